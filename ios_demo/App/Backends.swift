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

/// A streaming runtime: one step, the inputs (frame + state, in metadata.json's order) -> the outputs by name.
protocol StepBackend {
    var name: String { get }
    func step(_ inputs: [StreamingState.Input]) throws -> [String: [Float]]
}

/// CoreML on a streaming `.mlpackage`: every input and output by name, as MLMultiArrays.
final class CoreMLStepBackend: StepBackend {
    let name: String
    private let model: MLModel
    private let outputs: [String]

    init(url: URL, spec: StreamingSpec) throws {
        let compiled = try MLModel.compileModel(at: url)
        let config = MLModelConfiguration()
        config.computeUnits = .all
        model = try MLModel(contentsOf: compiled, configuration: config)
        guard Set(model.modelDescription.inputDescriptionsByName.keys) == Set(spec.inputs.map { $0.name }) else {
            throw GestureError("\(url.lastPathComponent): its inputs differ from the 'streaming' section of metadata.json")
        }
        outputs = spec.outputs.map { $0.name }
        name = "CoreML \(url.lastPathComponent), streaming"
    }

    func step(_ inputs: [StreamingState.Input]) throws -> [String: [Float]] {
        var features: [String: MLFeatureValue] = [:]
        for input in inputs {
            let array = try MLMultiArray(shape: input.shape.map { NSNumber(value: $0) }, dataType: .float32)
            input.data.withUnsafeBufferPointer { src in
                array.dataPointer.assumingMemoryBound(to: Float.self).update(from: src.baseAddress!, count: input.data.count)
            }
            features[input.name] = MLFeatureValue(multiArray: array)
        }
        let out = try model.prediction(from: MLDictionaryFeatureProvider(dictionary: features))
        var result: [String: [Float]] = [:]
        for name in outputs {
            guard let a = out.featureValue(for: name)?.multiArrayValue else { throw GestureError("the model returned no '\(name)'") }
            result[name] = Self.floats(a)
        }
        return result
    }

    /// The elements of an output in row-major order; the multi-index subscript honours its strides
    /// (CoreML may pad the last dimension of an output).
    static func floats(_ a: MLMultiArray) -> [Float] {
        let shape = a.shape.map { $0.intValue }
        var index = [Int](repeating: 0, count: shape.count)
        var out = [Float]()
        out.reserveCapacity(a.count)
        for _ in 0..<a.count {
            out.append(a[index.map { NSNumber(value: $0) }].floatValue)
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return out
    }
}

/// The artifact metadata.json names (or the folder's single .mlpackage/.pte) and its target.
func artifactFile(dir: URL, meta: Metadata) throws -> (url: URL, target: String) {
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
    return (url, meta.target ?? ["mlpackage": "coreml", "pte": "executorch"][url.pathExtension] ?? "")
}

/// Open the artifact metadata.json names, with the runtime its target (or suffix) calls
/// for, as `actionnet_edge.demo.runtime.artifact_file` does.
func openBackend(dir: URL, meta: Metadata) throws -> Backend {
    let (url, target) = try artifactFile(dir: dir, meta: meta)
    let s = meta.size
    let shape = meta.layout == "NHWC" ? [1, meta.segments, s, s, 3] : [1, meta.segments, 3, s, s]
    switch target {
    case "coreml": return try CoreMLBackend(url: url, shape: shape)
    case "executorch": return try ExecuTorchBackend(url: url, shape: shape)
    default: throw GestureError("\(url.lastPathComponent): target '\(target)' has no runtime in this app (coreml or executorch)")
    }
}

/// Open a streaming artifact (metadata.json has a `streaming` section): one step per frame.
/// CoreML only in this app; a streaming .pte is not wired here.
func openStepBackend(dir: URL, meta: Metadata, spec: StreamingSpec) throws -> StepBackend {
    let (url, target) = try artifactFile(dir: dir, meta: meta)
    guard target == "coreml" else {
        throw GestureError("\(url.lastPathComponent): streaming runs with CoreML in this app (export --streaming --target coreml), not '\(target)'")
    }
    return try CoreMLStepBackend(url: url, spec: spec)
}
