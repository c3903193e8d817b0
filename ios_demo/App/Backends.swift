import CoreML
import ExecuTorch
import Foundation
import GestureCore

/// A model runtime: one clip (flattened in the artifact's layout) -> K logits.
protocol Backend {
    var name: String { get }
    func run(_ clip: [Float]) throws -> [Float]
}

/// CoreML (`.mlpackage`, compiled on the device on first load).
final class CoreMLBackend: Backend {
    let name: String
    private let model: MLModel
    private let inputName: String
    private let shape: [NSNumber]

    init(url: URL, shape: [Int]) throws {
        let compiled = try MLModel.compileModel(at: url)
        let config = MLModelConfiguration()
        config.computeUnits = .all
        model = try MLModel(contentsOf: compiled, configuration: config)
        guard let input = model.modelDescription.inputDescriptionsByName.keys.first else {
            throw GestureError("\(url.lastPathComponent) has no input")
        }
        inputName = input
        self.shape = shape.map { NSNumber(value: $0) }
        name = "CoreML \(url.lastPathComponent)"
    }

    func run(_ clip: [Float]) throws -> [Float] {
        let array = try MLMultiArray(shape: shape, dataType: .float32)
        clip.withUnsafeBufferPointer { src in
            array.dataPointer.assumingMemoryBound(to: Float.self).update(from: src.baseAddress!, count: clip.count)
        }
        let out = try model.prediction(from: MLDictionaryFeatureProvider(dictionary: [inputName: array]))
        guard let name = out.featureNames.first, let logits = out.featureValue(for: name)?.multiArrayValue else {
            throw GestureError("the model returned no array")
        }
        return (0..<logits.count).map { logits[$0].floatValue }
    }
}

/// ExecuTorch's iOS runtime (`.pte`, XNNPACK delegate linked into the app).
final class ExecuTorchBackend: Backend {
    let name: String
    private let module: Module
    private let shape: [Int]

    init(url: URL, shape: [Int]) throws {
        module = Module(filePath: url.path)
        try module.load("forward")
        self.shape = shape
        name = "ExecuTorch \(url.lastPathComponent)"
    }

    func run(_ clip: [Float]) throws -> [Float] {
        let input = Tensor<Float>(clip, shape: shape)
        // decodes the first output as a float tensor; throws on a mismatch
        let output: Tensor<Float> = try module.forward([input])
        return output.scalars()
    }
}

/// Open the artifact metadata.json names, with the runtime its target (or suffix) calls
/// for, as `actionnet_edge.demo.runtime.artifact_file` does.
func openBackend(dir: URL, meta: Metadata) throws -> Backend {
    let fm = FileManager.default
    let url: URL
    if let name = meta.artifact {
        url = dir.appendingPathComponent((name as NSString).lastPathComponent)
    } else {
        let found = try fm.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
            .filter { ["mlpackage", "pte"].contains($0.pathExtension) }
        guard found.count == 1 else { throw GestureError("\(dir.path): metadata.json names no artifact and \(found.count) candidates found") }
        url = found[0]
    }
    guard fm.fileExists(atPath: url.path) else { throw GestureError("the artifact \(url.lastPathComponent) named in metadata.json is missing") }
    let target = meta.target ?? ["mlpackage": "coreml", "pte": "executorch"][url.pathExtension] ?? ""
    let s = meta.size
    let shape = meta.layout == "NHWC" ? [1, meta.segments, s, s, 3] : [1, meta.segments, 3, s, s]
    switch target {
    case "coreml": return try CoreMLBackend(url: url, shape: shape)
    case "executorch": return try ExecuTorchBackend(url: url, shape: shape)
    default: throw GestureError("\(url.lastPathComponent): target '\(target)' has no runtime in this app (coreml or executorch)")
    }
}
