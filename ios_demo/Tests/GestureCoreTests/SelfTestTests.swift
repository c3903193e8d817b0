import Foundation
import XCTest
@testable import GestureCore

/// SelfTest, mirroring the Android app's SelfTestTest: SELFTEST_VECTORS=FOLDER holds an export's
/// vectors.json and vectors.bin and expected.json, the figures and checks of the Python judge
/// (`actionnet_edge.verify.check.judge`) when the app's output is the host runtime's (the folder
/// tests/test_golden.py writes for the JVM run); SELFTEST_STREAM_VECTORS=FOLDER the same for a
/// streaming step. Without them those tests are skipped.
final class SelfTestTests: XCTestCase {
    func folder(_ variable: String) throws -> URL {
        guard let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty else {
            throw XCTSkip("set \(variable)=FOLDER (vectors.json, vectors.bin, expected.json)")
        }
        return URL(fileURLWithPath: path)
    }

    func load(_ dir: URL) throws -> SelfTest {
        try SelfTest.read(json: Data(contentsOf: dir.appendingPathComponent("vectors.json")),
                          bin: Data(contentsOf: dir.appendingPathComponent("vectors.bin")))
    }

    func expected(_ dir: URL) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("expected.json"))) as? [String: Any])
    }

    /// The tensor expected.json says the Python judge took as the app's output (host_runtime, else pytorch).
    func output(_ st: SelfTest, _ exp: [String: Any], _ key: String = "output") throws -> [Float] {
        try XCTUnwrap(st.tensors[try XCTUnwrap(exp[key] as? String)]).data
    }

    func testReferenceOutputPasses() throws {
        let dir = try folder("SELFTEST_VECTORS")
        let st = try load(dir), exp = try expected(dir)
        XCTAssertFalse(st.stream)
        let ref = try output(st, exp)
        let res = try st.judge(logits: ref)
        XCTAssertTrue(res.passed, res.description)
        XCTAssertEqual(res.failures, [])
        // runClips feeds every input row in order: a "model" that looks its row up gives the same
        let rows = try (0..<st.count).map { try st.input($0) }
        let k = ref.count / st.count
        let run = try st.runClips { clip in
            let i = try XCTUnwrap(rows.firstIndex(of: clip))
            return Array(ref[(i * k)..<((i + 1) * k)])
        }
        XCTAssertTrue(run.passed)
        XCTAssertEqual(run.figures["vs_pytorch"], res.figures["vs_pytorch"])
        if st.precision == "fp32", ((st.doc["tolerances"] as? [String: Any])?["min_cosine"] as? NSNumber)?.doubleValue == 0.99999 {
            // the names demo.js gives its checks (JavaScript prints 1.0 as "1")
            XCTAssertEqual(res.checks.prefix(2).map { $0.name },
                           ["vs pytorch: cosine vs float >= 0.99999", "vs pytorch: top1_agreement vs float >= 1"])
        }
        XCTAssertTrue(res.title().hasPrefix("Self-test passed (\(st.count) clips, \(st.precision))"), res.title())
    }

    func testFiguresEqualThePythonJudge() throws {
        let dir = try folder("SELFTEST_VECTORS")
        let st = try load(dir), exp = try expected(dir)
        try sameAsPython(exp, try st.judge(logits: try output(st, exp)))
    }

    func testFlippedTop1Fails() throws {
        let dir = try folder("SELFTEST_VECTORS")
        let st = try load(dir)
        var out = try output(st, try expected(dir))
        let k = out.count / st.count
        // vector 0: its top logit drops below the smallest one, so another class comes first
        let row = Array(out[0..<k])
        let best = try XCTUnwrap(row.firstIndex(of: try XCTUnwrap(row.max())))
        out[best] = try XCTUnwrap(row.min()) - 1
        let res = try st.judge(logits: out)
        XCTAssertFalse(res.passed)
        XCTAssertEqual(try XCTUnwrap(res.figures["vs_pytorch"]).top1Agreement, 1 - 1 / Double(st.count), accuracy: 1e-12)
        XCTAssertTrue(res.failures.contains { $0.hasPrefix("vs pytorch: top1_agreement vs float >= ") }, "\(res.failures)")
        if st.tensors["host_runtime"] != nil {
            XCTAssertTrue(res.failures.contains("vs host runtime: same top-1 on every vector"), "\(res.failures)")
        }
        XCTAssertTrue(res.lines().last?.hasPrefix("missed: ") ?? false)
        XCTAssertTrue(res.title().hasPrefix("Self-test FAILED"))
    }

    func testNoisyOutputFails() throws {
        let dir = try folder("SELFTEST_VECTORS")
        let st = try load(dir)
        var rng = SplitMix(seed: 7)
        let out = try output(st, try expected(dir)).map { $0 * (1 + 0.5 * (2 * rng.nextFloat() - 1)) }  // SQNR ~ 11 dB
        let res = try st.judge(logits: out)
        XCTAssertFalse(res.passed)
        let parity = st.precision == "int8" ? "vs pytorch: sqnr_db vs float >= " : "vs pytorch: cosine vs float >= "
        XCTAssertTrue(res.failures.contains { $0.hasPrefix(parity) }, "\(res.failures)")
        if st.tensors["host_runtime"] != nil {
            XCTAssertTrue(res.failures.contains { $0.hasPrefix("vs host runtime: max abs err <= ") }, "\(res.failures)")
        }
    }

    func testBadFilesAreRejected() throws {
        let dir = try folder("SELFTEST_VECTORS")
        let json = try Data(contentsOf: dir.appendingPathComponent("vectors.json"))
        let bin = try Data(contentsOf: dir.appendingPathComponent("vectors.bin"))
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: json) as? [String: Any])
        let table = try XCTUnwrap(doc["tensors"] as? [[String: Any]])
        let last = try XCTUnwrap(table.last?["name"] as? String)
        rejects("vectors.bin is too short for tensor '\(last)'") { _ = try SelfTest.read(json: json, bin: bin.prefix(bin.count - 4)) }
        var wrong = doc; wrong["format"] = "actionnet-edge.vectors/0"
        rejects("format 'actionnet-edge.vectors/0', expected 'actionnet-edge.vectors/1'") { _ = try SelfTest.read(doc: wrong, bin: bin) }
        var none = doc; none["format"] = nil
        rejects("format 'null'") { _ = try SelfTest.read(doc: none, bin: bin) }
        rejects("vectors.json is not a JSON object") { _ = try SelfTest.read(json: Data("not json".utf8), bin: bin) }
        var noPytorch = doc; noPytorch["tensors"] = table.filter { $0["name"] as? String != "pytorch" }
        rejects("vectors.json lacks the 'pytorch' tensor") { _ = try SelfTest.read(doc: noPytorch, bin: bin) }
        var noTolerances = doc; noTolerances["tolerances"] = nil
        rejects("vectors.json is malformed") { _ = try SelfTest.read(doc: noTolerances, bin: bin) }
        let st = try SelfTest.read(json: json, bin: bin)
        let n = try XCTUnwrap(st.tensors["pytorch"]).data.count
        rejects("the app's logits have \(n - 1) values, the reference \(n)") {
            _ = try st.judge(logits: [Float](repeating: 0, count: n - 1))
        }
        rejects("vector \(st.count) of \(st.count)") { _ = try st.input(st.count) }
    }

    func testNumbersAreWrittenAsJavaScriptDoes() {
        // String(x) and x.toPrecision(3) in a browser, which name demo.js's checks
        XCTAssertEqual([20.0, 0.99999, 1.0, 0.98, 1e-4, 0.02, 1e-6, 1e-7, 123456.0, -2.5].map { jsNumber($0) },
                       ["20", "0.99999", "1", "0.98", "0.0001", "0.02", "0.000001", "1e-7", "123456", "-2.5"])
        XCTAssertEqual([1e-4, 0.0123456, 1234.5, 1e-7, 0.0, 4.0, 999.6, 0.06, 1.245, 12.34].map { toPrecision3($0) },
                       ["0.000100", "0.0123", "1.23e+3", "1.00e-7", "0.00", "4.00", "1.00e+3", "0.0600", "1.25", "12.3"])
        XCTAssertEqual(jsNumber(.infinity), "Infinity")
    }

    /// Small vectors written here: clips fed in order, a stream's state fed back from zeros, metadata's file names.
    func testRunFeedsEveryVectorAndTheStateBack() throws {
        // 3 frames of 1x3x2x2 floats, K = 2 logits; the "model" below adds up the frame and the state
        let frames = (0..<3).map { [Float](repeating: Float($0 + 1), count: 12) }
        var logits: [[Float]] = [], frameLogits: [[Float]] = [], s: Float = 0
        for f in frames.map({ $0.reduce(0, +) }) {
            frameLogits.append([f, -f])
            logits.append([f + s, -(f + s)])
            s += f
        }
        let (doc, bin) = vectors("stream", [("input", [3, 1, 3, 2, 2], frames), ("pytorch", [3, 1, 2], logits),
                                            ("pytorch_frame_logits", [3, 1, 2], frameLogits)])
        let st = try SelfTest.read(doc: doc, bin: bin)
        XCTAssertTrue(st.stream)
        XCTAssertEqual(try st.input(1), frames[1])
        let spec = try XCTUnwrap(try StreamingSpec.parse(Data("""
            {"size": 2, "streaming": {"window": 1,
             "inputs": [{"name": "frame", "shape": [1, 3, 2, 2]}, {"name": "s", "shape": [1, 1]}],
             "outputs": [{"name": "logits", "shape": [1, 2]}, {"name": "frame_logits", "shape": [1, 2]}, {"name": "s_out", "shape": [1, 1]}],
             "state": [{"name": "s", "shape": [1, 1], "output": "s_out"}]}}
            """.utf8)))
        var seen: [Float] = []
        let res = try st.runStream(spec: spec) { inputs in
            let f = inputs[0].data.reduce(0, +), state = inputs[1].data[0]
            seen.append(state)
            return ["logits": [f + state, -(f + state)], "frame_logits": [f, -f], "s_out": [state + f]]
        }
        XCTAssertEqual(seen, [0, 12, 36])
        XCTAssertTrue(res.passed, res.description)
        XCTAssertEqual(res.checks.map { $0.name }, ["vs pytorch: cosine vs float >= 0.99999", "vs pytorch: top1_agreement vs float >= 1",
                                                    "vs pytorch: frame_logits cosine >= 0.99999"])
        XCTAssertEqual(res.figures["frame_logits_vs_pytorch"]?.sqnrDb, .infinity)
        rejects("needs the frame_logits") { _ = try st.judge(logits: [Float](repeating: 0, count: 6)) }
        rejects("run them with runStream") { _ = try st.runClips { $0 } }
        // clips: each row once, in order
        let (clipDoc, clipBin) = vectors("clips", [("input", [3, 1, 12], frames), ("pytorch", [3, 1, 2], frameLogits)])
        let clips = try SelfTest.read(doc: clipDoc, bin: clipBin)
        var fed: [Float] = []
        let clipRes = try clips.runClips { clip in
            fed.append(clip[0])
            return [clip.reduce(0, +), -clip.reduce(0, +)]
        }
        XCTAssertEqual(fed, [1, 2, 3])
        XCTAssertTrue(clipRes.passed)
        let names = try XCTUnwrap(try SelfTest.files(metadata: Data(#"{"vectors": {"file": "v.json", "data": "v.bin"}}"#.utf8)))
        XCTAssertEqual(names.json, "v.json")
        XCTAssertEqual(names.bin, "v.bin")
        XCTAssertNil(try SelfTest.files(metadata: Data(#"{"labels": ["a"]}"#.utf8)))
    }

    func testStreamVectorsAreJudgedWithTheirFrameLogits() throws {
        let dir = try folder("SELFTEST_STREAM_VECTORS")
        let st = try load(dir), exp = try expected(dir)
        XCTAssertTrue(st.stream)
        let logits = try output(st, exp), frameLogits = try output(st, exp, "frame_output")
        let res = try st.judge(logits: logits, frameLogits: frameLogits)
        XCTAssertTrue(res.passed, res.description)
        XCTAssertTrue(res.title().contains("\(st.count) frames"))
        try sameAsPython(exp, res)
        var rng = SplitMix(seed: 3)
        let noisy = frameLogits.map { $0 * (1 + 0.5 * (2 * rng.nextFloat() - 1)) }
        let bad = try st.judge(logits: logits, frameLogits: noisy)
        // int8 frame logits are judged by SQNR (as the export's parity), fp32/fp16 by cosine
        let check = st.precision == "int8" ? "vs pytorch: frame_logits sqnr_db >= " : "vs pytorch: frame_logits cosine >= "
        XCTAssertTrue(bad.failures.contains { $0.hasPrefix(check) }, "\(bad.failures)")
        XCTAssertEqual(bad.failures.count, 1)  // the logits themselves are still right
        rejects("the app's frame_logits have 1 values") { _ = try st.judge(logits: logits, frameLogits: [0]) }
    }

    /// `res` has the Python judge's figures (to 1e-5 relative), check outcomes in order and check names
    /// (Python writes 1.0 where JavaScript, and so this class, write 1; and 3 significant digits differently).
    func sameAsPython(_ exp: [String: Any], _ res: SelfTestResult, file: StaticString = #filePath, line: UInt = #line) throws {
        let figures = try XCTUnwrap(exp["figures"] as? [String: [String: Any]])
        XCTAssertEqual(Set(figures.keys), Set(res.figures.keys), file: file, line: line)
        for (ref, want) in figures {
            let got = try XCTUnwrap(res.figures[ref])
            let pairs: [(String, Double)] = [("max_abs_err", got.maxAbsErr), ("mean_abs_err", got.meanAbsErr), ("cosine", got.cosine),
                                             ("sqnr_db", got.sqnrDb), ("top1_agreement", got.top1Agreement)]
            for (key, value) in pairs {
                let w = try number(want[key])
                if w.isFinite {
                    XCTAssertTrue(abs(w - value) <= 1e-5 * max(abs(w), 1e-12), "\(ref) \(key): Python \(w), here \(value)", file: file, line: line)
                } else {
                    XCTAssertEqual("\(w)", "\(value)", "\(ref) \(key)", file: file, line: line)
                }
            }
        }
        let checks = try XCTUnwrap(exp["checks"] as? [[Any]])
        XCTAssertEqual(checks.count, res.checks.count, file: file, line: line)
        for (pair, got) in zip(checks, res.checks) {
            let name = try XCTUnwrap(pair[0] as? String), ok = try XCTUnwrap((pair[1] as? Bool) ?? (pair[1] as? NSNumber)?.boolValue)
            XCTAssertEqual(ok, got.ok, name, file: file, line: line)
            sameName(name, got.name, file: file, line: line)
        }
        XCTAssertEqual((exp["passed"] as? Bool) ?? (exp["passed"] as? NSNumber)?.boolValue, res.passed, file: file, line: line)
    }

    /// "vs pytorch: top1_agreement vs float >= 1.0" (Python) and "... >= 1" (here): same text, same number.
    func sameName(_ py: String, _ here: String, file: StaticString, line: UInt) {
        guard let op = [" >= ", " <= "].first(where: { py.contains($0) }),
              let a = py.range(of: op, options: .backwards), let b = here.range(of: op, options: .backwards) else {
            XCTAssertEqual(py, here, file: file, line: line)
            return
        }
        XCTAssertEqual(String(py[..<a.lowerBound]), String(here[..<b.lowerBound]), file: file, line: line)
        let x = Double(py[a.upperBound...]) ?? .nan, y = Double(here[b.upperBound...]) ?? .nan
        XCTAssertTrue(abs(x - y) <= 5e-3 * abs(x), "\(py) vs \(here)", file: file, line: line)
    }

    /// A number of expected.json; non-finite ones are written as strings ("Infinity").
    func number(_ v: Any?) throws -> Double {
        if let s = v as? String { return try XCTUnwrap(Double(s.replacingOccurrences(of: "Infinity", with: "inf"))) }
        return try XCTUnwrap((v as? NSNumber)?.doubleValue)
    }

    /// vectors.json + vectors.bin of the given tensors (rows of floats), fp32 with the default tolerances.
    func vectors(_ kind: String, _ tensors: [(String, [Int], [[Float]])]) -> ([String: Any], Data) {
        var table: [[String: Any]] = [], bin = Data()
        for (name, shape, rows) in tensors {
            table.append(["name": name, "offset": bin.count, "shape": shape])
            for v in rows.joined() { withUnsafeBytes(of: v.bitPattern.littleEndian) { bin.append(contentsOf: $0) } }
        }
        let doc: [String: Any] = ["format": SelfTest.format, "kind": kind, "precision": "fp32", "count": tensors[0].1[0],
                                  "tensors": table,
                                  "tolerances": ["min_cosine": 0.99999, "min_cosine_fp16": 0.999, "min_top1": 1.0,
                                                 "min_sqnr_db": 20.0, "min_top1_int8": 0.98, "host_rtol": 0.0001]]
        return (doc, bin)
    }
}

/// A small seeded generator (SplitMix64), so the noisy outputs are the same on every run.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func nextFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }
}
