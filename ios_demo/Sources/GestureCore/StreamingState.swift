import Foundation

/// A float32 tensor of a streaming artifact as metadata.json lists it: name and shape.
public struct TensorSpec: Equatable {
    public let name: String
    public let shape: [Int]
    /// Number of floats.
    public var size: Int { shape.reduce(1, *) }
}

/// The `streaming` section of metadata.json (`actionnet-edge export --streaming`). The step takes
/// `frame` (1, 3, S, S) and every state tensor, and returns `logits` (the average of the last
/// `window` frame logits), `frame_logits` and, for every state tensor, its new value under the
/// output name listed for it (`<name>_out`). Mirror of StreamingState.kt (Android) and of
/// `StreamState` in web_demo/demo.js.
public struct StreamingSpec: Equatable {
    /// `frame`, then the state tensors, in the artifact's input order.
    public let inputs: [TensorSpec]
    /// `logits`, `frame_logits`, then the new state tensors, in the artifact's output order.
    public let outputs: [TensorSpec]
    public let state: [TensorSpec]
    /// `stateOutputs[i]` is the output fed back as `state[i]` for the next frame.
    public let stateOutputs: [String]
    public let window: Int
    public var frame: TensorSpec { inputs[0] }

    /// The `streaming` section of metadata.json, or nil for a clip artifact.
    public static func parse(_ data: Data) throws -> StreamingSpec? {
        guard let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw GestureError("metadata.json is not a JSON object")
        }
        guard let raw = o["streaming"] else { return nil }
        let malformed = GestureError("metadata.json: malformed 'streaming' section")
        func tensors(_ value: Any?) throws -> [TensorSpec] {
            guard let list = value as? [[String: Any]] else { throw malformed }
            return try list.map { t -> TensorSpec in
                guard let name = t["name"] as? String, let shape = t["shape"] as? [NSNumber] else { throw malformed }
                return TensorSpec(name: name, shape: shape.map { $0.intValue })
            }
        }
        guard let s = raw as? [String: Any], let window = (s["window"] as? NSNumber)?.intValue,
              let st = s["state"] as? [[String: Any]] else { throw malformed }
        let stateOutputs = try st.map { t -> String in
            guard let out = t["output"] as? String else { throw malformed }
            return out
        }
        let spec = StreamingSpec(inputs: try tensors(s["inputs"]), outputs: try tensors(s["outputs"]),
                                 state: try tensors(st), stateOutputs: stateOutputs, window: window)
        let size = (o["size"] as? NSNumber)?.intValue ?? -1
        guard let first = spec.inputs.first, first.name == "frame", first.shape == [1, 3, size, size] else {
            throw GestureError("metadata.json: the first streaming input must be 'frame' of shape [1, 3, \(size), \(size)]")
        }
        guard Array(spec.inputs.dropFirst()) == spec.state else {
            throw GestureError("metadata.json: the streaming inputs after 'frame' differ from its 'state' list")
        }
        let names = Set(spec.outputs.map { $0.name })
        if let missing = (["logits"] + spec.stateOutputs).first(where: { !names.contains($0) }) {
            throw GestureError("metadata.json: the streaming outputs lack '\(missing)'")
        }
        guard spec.window >= 1 else { throw GestureError("metadata.json: the streaming window must be >= 1, got \(spec.window)") }
        return spec
    }
}

/// The state a streaming artifact carries from frame to frame: zeros for the first frame, then
/// each step's `<name>_out` outputs as the next step's `<name>` inputs. Per kept frame:
/// `logits = try state.update(backend.step(state.inputs(frame: window.preprocess(...))))`, shown
/// once `ready` (after `window` steps, as the Python live demo does).
public final class StreamingState {
    public typealias Input = (name: String, shape: [Int], data: [Float])
    public let spec: StreamingSpec
    public private(set) var steps = 0
    private var values: [[Float]]

    /// True once `window` frames have run: the logits then average a full window.
    public var ready: Bool { steps >= spec.window }

    public init(spec: StreamingSpec) {
        self.spec = spec
        values = spec.state.map { [Float](repeating: 0, count: $0.size) }
    }

    /// Back to zero state: the start of a new stream.
    public func reset() {
        values = spec.state.map { [Float](repeating: 0, count: $0.size) }
        steps = 0
    }

    /// The current value of state tensor `name` (zeros before the first step).
    public func value(_ name: String) throws -> [Float] {
        guard let i = spec.state.firstIndex(where: { $0.name == name }) else { throw GestureError("no state tensor '\(name)'") }
        return values[i]
    }

    /// The next step's inputs, in the artifact's order: the frame, then the state.
    public func inputs(frame: [Float]) throws -> [Input] {
        guard frame.count == spec.frame.size else {
            throw GestureError("the frame has \(frame.count) floats, metadata.json says \(spec.frame.size)")
        }
        var out: [Input] = [(name: spec.frame.name, shape: spec.frame.shape, data: frame)]
        for (i, t) in spec.state.enumerated() { out.append((name: t.name, shape: t.shape, data: values[i])) }
        return out
    }

    /// One step's outputs by name: keeps every `<name>_out` as the next `<name>`; returns the logits.
    public func update(_ outputs: [String: [Float]]) throws -> [Float] {
        let next = try spec.state.indices.map { i -> [Float] in
            let name = spec.stateOutputs[i]
            guard let v = outputs[name] else { throw GestureError("the model returned no '\(name)'") }
            guard v.count == spec.state[i].size else {
                throw GestureError("the model returned \(v.count) floats for '\(name)', metadata.json says \(spec.state[i].size)")
            }
            return v
        }
        guard let logits = outputs["logits"] else { throw GestureError("the model returned no 'logits'") }
        values = next
        steps += 1
        return logits
    }
}
