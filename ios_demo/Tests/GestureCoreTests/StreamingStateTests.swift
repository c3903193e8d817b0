import Foundation
import XCTest
@testable import GestureCore

/// StreamingSpec / StreamingState, mirroring the Android app's StreamingStateTest: the `streaming`
/// section of metadata.json is read as `actionnet-edge export --streaming` writes it, the state
/// starts at zeros and every `<name>_out` output comes back as `<name>` on the next frame. A real
/// section is read when STREAMING_METADATA=FILE is set.
final class StreamingStateTests: XCTestCase {
    /// A small streaming metadata.json: 8 px frames, state s0 (1, 2, 2, 2) and s1 (1, 3), window 3.
    func metadata(_ edit: (inout [String: Any]) -> Void = { _ in }) throws -> Data {
        var s: [String: Any] = [
            "window": 3,
            "inputs": [["name": "frame", "shape": [1, 3, 8, 8]], ["name": "s0", "shape": [1, 2, 2, 2]],
                       ["name": "s1", "shape": [1, 3]]],
            "outputs": [["name": "logits", "shape": [1, 2]], ["name": "frame_logits", "shape": [1, 2]],
                        ["name": "s0_out", "shape": [1, 2, 2, 2]], ["name": "s1_out", "shape": [1, 3]]],
            "state": [["name": "s0", "shape": [1, 2, 2, 2], "output": "s0_out"],
                      ["name": "s1", "shape": [1, 3], "output": "s1_out"]],
        ]
        edit(&s)
        let o: [String: Any] = ["labels": ["a", "b"], "segments": 3, "size": 8, "mean": [0, 0, 0], "std": [1, 1, 1],
                                "streaming": s]
        return try JSONSerialization.data(withJSONObject: o)
    }

    func testSectionIsReadFromMetadata() throws {
        let spec = try XCTUnwrap(try StreamingSpec.parse(metadata()))
        XCTAssertEqual(spec.inputs.map { $0.name }, ["frame", "s0", "s1"])
        XCTAssertEqual(spec.outputs.map { $0.name }, ["logits", "frame_logits", "s0_out", "s1_out"])
        XCTAssertEqual(spec.stateOutputs, ["s0_out", "s1_out"])
        XCTAssertEqual(spec.state.map { $0.size }, [8, 3])
        XCTAssertEqual(spec.frame.size, 3 * 8 * 8)
        XCTAssertEqual(spec.window, 3)
        XCTAssertEqual(try Metadata.parse(metadata()).segments, 3)  // the rest of the file still parses as before
        // a clip artifact has no streaming section
        let cases = try XCTUnwrap(JSONSerialization.jsonObject(
            with: Data(contentsOf: GestureWindowTests.dir.appendingPathComponent("cases.json"))) as? [String: Any])
        let first = try XCTUnwrap((cases["cases"] as? [[String: Any]])?.first?["metadata"] as? String)
        XCTAssertNil(try StreamingSpec.parse(Data(contentsOf: GestureWindowTests.dir.appendingPathComponent(first))))
    }

    func testStateStartsAtZerosAndOutputsAreFedBack() throws {
        let state = StreamingState(spec: try XCTUnwrap(try StreamingSpec.parse(metadata())))
        // a fake model: s0_out = s0 + frame[0], s1_out = s1 * 2 + 1, logits = (s0[0], s1[0])
        var fed: [[Float]] = []
        for step in 1...5 {
            let frame = [Float](repeating: Float(step), count: 3 * 8 * 8)
            let inputs = try state.inputs(frame: frame)
            XCTAssertEqual(inputs.map { $0.name }, ["frame", "s0", "s1"])
            let s0 = inputs[1].data, s1 = inputs[2].data
            fed.append([s0[0], s1[0]])
            let logits = try state.update([
                "s1_out": s1.map { $0 * 2 + 1 }, "frame_logits": [0, 0], "logits": [s0[0], s1[0]],
                "s0_out": s0.map { $0 + frame[0] },
            ])
            XCTAssertEqual(logits, [s0[0], s1[0]])
            XCTAssertEqual(state.steps, step)
            XCTAssertEqual(state.ready, step >= 3)
        }
        // s0 before step k is 1 + 2 + ... + (k - 1); s1 is 2^(k-1) - 1: zeros first, then each output
        XCTAssertEqual(fed, [[0, 0], [1, 1], [3, 3], [6, 7], [10, 15]])
        XCTAssertEqual(try state.value("s0"), [Float](repeating: 15, count: 8))
        state.reset()
        XCTAssertEqual(state.steps, 0)
        XCTAssertFalse(state.ready)
        XCTAssertEqual(try state.value("s1"), [0, 0, 0])
    }

    func testBadOutputsAreRejectedAndLeaveTheStateAlone() throws {
        let state = StreamingState(spec: try XCTUnwrap(try StreamingSpec.parse(metadata())))
        let good: [String: [Float]] = ["logits": [0, 0], "s0_out": [Float](repeating: 1, count: 8), "s1_out": [0, 0, 0]]
        var noS1 = good; noS1["s1_out"] = nil
        var short = good; short["s0_out"] = [Float](repeating: 1, count: 7)
        var noLogits = good; noLogits["logits"] = nil
        rejects("returned no 's1_out'") { _ = try state.update(noS1) }
        rejects("returned 7 floats for 's0_out'") { _ = try state.update(short) }
        rejects("returned no 'logits'") { _ = try state.update(noLogits) }
        rejects("the frame has 5 floats") { _ = try state.inputs(frame: [Float](repeating: 0, count: 5)) }
        XCTAssertEqual(state.steps, 0)
        XCTAssertEqual(try state.value("s0"), [Float](repeating: 0, count: 8))
    }

    func testBadSectionsAreRejected() throws {
        func list(_ s: [String: Any], _ key: String) -> [[String: Any]] { s[key] as! [[String: Any]] }
        let edits: [(String, (inout [String: Any]) -> Void)] = [
            ("first streaming input must be 'frame' of shape [1, 3, 8, 8]",
             { s in var l = list(s, "inputs"); l[0]["shape"] = [1, 3, 8, 9]; s["inputs"] = l }),
            ("the streaming outputs lack 's1_out'", { s in var l = list(s, "outputs"); l.remove(at: 3); s["outputs"] = l }),
            ("differ from its 'state' list", { s in var l = list(s, "state"); l.remove(at: 0); s["state"] = l }),
            ("window must be >= 1", { s in s["window"] = 0 }),
            ("malformed 'streaming' section", { s in s["state"] = nil }),
        ]
        for (message, edit) in edits {
            let data = try metadata(edit)
            rejects(message) { _ = try StreamingSpec.parse(data) }
        }
    }

    func testRealExportedSectionIsRead() throws {
        guard let path = ProcessInfo.processInfo.environment["STREAMING_METADATA"], !path.isEmpty else {
            throw XCTSkip("set STREAMING_METADATA=FILE (a metadata.json written by export --streaming)")
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let raw = try XCTUnwrap((JSONSerialization.jsonObject(with: data) as? [String: Any])?["streaming"] as? [String: Any])
        let spec = try XCTUnwrap(try StreamingSpec.parse(data))
        let size = try Metadata.parse(data).size
        XCTAssertEqual(spec.frame.shape, [1, 3, size, size])
        XCTAssertFalse(spec.state.isEmpty)
        XCTAssertEqual(spec.stateOutputs, spec.state.map { $0.name + "_out" })
        XCTAssertEqual(spec.state.map { $0.size }.reduce(0, +), (raw["state_floats"] as? NSNumber)?.intValue)
        XCTAssertEqual(spec.window, (raw["window"] as? NSNumber)?.intValue)
        let state = StreamingState(spec: spec)
        let inputs = try state.inputs(frame: [Float](repeating: 0, count: spec.frame.size))
        XCTAssertEqual(inputs.map { $0.name }, spec.inputs.map { $0.name })
        XCTAssertTrue(inputs.dropFirst().allSatisfy { $0.data.allSatisfy { $0 == 0 } })
        var outputs: [String: [Float]] = [:]
        for t in spec.outputs { outputs[t.name] = [Float](repeating: 1, count: t.size) }
        _ = try state.update(outputs)
        XCTAssertTrue(try spec.state.allSatisfy { t in try state.value(t.name).allSatisfy { $0 == 1 } })
    }
}
