import Foundation

/// One tensor of vectors.bin: its name, shape and values (row-major float32).
public struct VectorTensor {
    public let name: String
    public let shape: [Int]
    public let data: [Float]

    /// Row `i` of the first dimension (one vector).
    public func row(_ i: Int) -> [Float] {
        let per = data.count / shape[0]
        return Array(data[(i * per)..<((i + 1) * per)])
    }
}

/// Max abs error, mean abs error, cosine, SQNR (dB) and top-1 agreement of test logits against reference ones.
public struct LogitFigures: Equatable {
    public let maxAbsErr: Double
    public let meanAbsErr: Double
    public let cosine: Double
    public let sqnrDb: Double
    public let top1Agreement: Double

    /// As the browser's self-test shows it: `max abs err 1.23e-6, cosine 1.0000000, SQNR 120.4 dB, top-1 100%`.
    public func line() -> String {
        func fixed(_ v: Double, _ digits: Int) -> String { v.isFinite ? String(format: "%.\(digits)f", v) : jsNumber(v) }
        let percent = top1Agreement.isFinite ? String(Int((100 * top1Agreement).rounded())) : jsNumber(top1Agreement)
        return "max abs err \(toPrecision3(maxAbsErr)), cosine \(fixed(cosine, 7)), SQNR \(fixed(sqnrDb, 1)) dB, top-1 \(percent)%"
    }
}

/// The outcome of a self-test: the figures by reference (`vs_pytorch`, for a stream
/// `frame_logits_vs_pytorch`, and `vs_host_runtime` when the vectors have it) and the checks, in
/// the order `judgeVectors` in web_demo/demo.js makes them.
public struct SelfTestResult: CustomStringConvertible {
    public let figures: [String: LogitFigures]
    public let checks: [(name: String, ok: Bool)]
    public let count: Int
    public let kind: String
    public let precision: String

    public var failures: [String] { checks.filter { !$0.ok }.map { $0.name } }
    public var passed: Bool { failures.isEmpty }

    /// The outcome of the check `name`, or nil when there is no such check.
    public func check(_ name: String) -> Bool? { checks.first(where: { $0.name == name })?.ok }

    /// `Self-test passed (4 clips, fp32)` or `Self-test FAILED (...)`.
    public func title() -> String {
        "Self-test \(passed ? "passed" : "FAILED") (\(count) \(kind == "stream" ? "frames" : "clips"), \(precision))"
    }

    /// The figures vs PyTorch and the host runtime, then the checks missed, one per line.
    public func lines() -> [String] {
        var out: [String] = []
        if let f = figures["vs_pytorch"] { out.append("vs PyTorch: \(f.line())") }
        if let f = figures["vs_host_runtime"] { out.append("vs host runtime: \(f.line())") }
        if !failures.isEmpty { out.append("missed: \(failures.joined(separator: "; "))") }
        return out
    }

    public var description: String { ([title()] + lines()).joined(separator: "\n") }
}

/// An export's test vectors (vectors.json + vectors.bin, written by
/// `actionnet_edge/export/vectors.py`) and the judge of an app's outputs on them: the mirror of
/// the Android app's `SelfTest.kt`, of `actionnet_edge.verify.check.judge` and of `readVectors` /
/// `judgeVectors` in web_demo/demo.js, with the same figures and the same check names as the browser's.
///
/// Against `pytorch`: int8, SQNR >= `min_sqnr_db` and top-1 agreement >= `min_top1_int8`;
/// fp32/fp16, cosine >= `min_cosine` / `min_cosine_fp16` and top-1 agreement >= `min_top1`; a
/// stream adds the cosine of its frame logits. Against `host_runtime` (when present): max abs
/// error <= `host_rtol` * max(1, max |host logit|) and the same top-1 on every vector.
///
/// Usage: `let st = try SelfTest.read(json: data, bin: bytes)`; feed `input(i)` for every
/// i < `count` to the model (a stream: frame by frame from the zero state, see `runStream`) and
/// `judge` the outputs.
public final class SelfTest {
    public static let format = "actionnet-edge.vectors/1"
    public let doc: [String: Any]
    public let tensors: [String: VectorTensor]
    public let count: Int
    public let kind: String
    public let precision: String
    private let tolerances: [String: Any]
    public var stream: Bool { kind == "stream" }

    init(doc: [String: Any], tensors: [String: VectorTensor], count: Int, precision: String, tolerances: [String: Any]) {
        self.doc = doc
        self.tensors = tensors
        self.count = count
        self.kind = doc["kind"] as? String ?? "clips"
        self.precision = precision
        self.tolerances = tolerances
    }

    /// The (vectors.json, vectors.bin) file names metadata.json's `vectors` section gives, or nil without one.
    public static func files(metadata: Data) throws -> (json: String, bin: String)? {
        guard let o = try? JSONSerialization.jsonObject(with: metadata) as? [String: Any] else {
            throw GestureError("metadata.json is not a JSON object")
        }
        guard let v = o["vectors"] as? [String: Any] else { return nil }
        return (json: v["file"] as? String ?? "vectors.json", bin: v["data"] as? String ?? "vectors.bin")
    }

    public static func read(json: Data, bin: Data) throws -> SelfTest {
        guard let doc = (try? JSONSerialization.jsonObject(with: json)) as? [String: Any] else {
            throw GestureError("vectors.json is not a JSON object")
        }
        return try read(doc: doc, bin: bin)
    }

    /// The vectors over vectors.bin's bytes; throws GestureError naming the problem.
    public static func read(doc: [String: Any], bin: Data) throws -> SelfTest {
        let found = doc["format"].map { "\($0)" } ?? "null"
        guard found == format else { throw GestureError("vectors.json: format '\(found)', expected '\(format)'") }
        guard let table = doc["tensors"] as? [[String: Any]], let count = (doc["count"] as? NSNumber)?.intValue,
              let precision = doc["precision"] as? String, let tolerances = doc["tolerances"] as? [String: Any] else {
            throw GestureError("vectors.json is malformed (it needs 'tensors', 'count', 'precision' and 'tolerances')")
        }
        var tensors: [String: VectorTensor] = [:]
        for t in table {
            guard let name = t["name"] as? String, let offset = (t["offset"] as? NSNumber)?.intValue,
                  let shape = (t["shape"] as? [NSNumber])?.map({ $0.intValue }) else {
                throw GestureError("vectors.json is malformed (a tensor without name, offset or shape)")
            }
            let n = shape.reduce(1, *)
            guard offset >= 0, n >= 0, offset + 4 * n <= bin.count else {
                throw GestureError("vectors.bin is too short for tensor '\(name)' (\(4 * n) bytes at offset \(offset), the file has \(bin.count))")
            }
            var data = [Float](repeating: 0, count: n)
            bin.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                for i in 0..<n {  // little-endian whatever the machine's order
                    data[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4 * i, as: UInt32.self)))
                }
            }
            tensors[name] = VectorTensor(name: name, shape: shape, data: data)
        }
        for name in ["input", "pytorch"] where tensors[name] == nil {
            throw GestureError("vectors.json lacks the '\(name)' tensor")
        }
        guard count >= 1 else { throw GestureError("vectors.json: count must be >= 1, got \(count)") }
        for t in tensors.values where t.shape.first != count {
            throw GestureError("vectors.json: tensor '\(t.name)' has shape \(t.shape), expected \(count) vectors first")
        }
        if doc["kind"] as? String == "stream", tensors["pytorch_frame_logits"] == nil {
            throw GestureError("vectors.json lacks the 'pytorch_frame_logits' tensor")
        }
        return SelfTest(doc: doc, tensors: tensors, count: count, precision: precision, tolerances: tolerances)
    }

    /// Vector `i`'s model input, flattened in the artifact's layout (a clip, or a stream's frame).
    public func input(_ i: Int) throws -> [Float] {
        guard i >= 0, i < count, let t = tensors["input"] else { throw GestureError("vector \(i) of \(count)") }
        return t.row(i)
    }

    /// Figures and checks of the app's outputs: `logits` of every vector one after the other
    /// (count x K floats), and for a stream `frameLogits` likewise. Throws GestureError when an
    /// output has the wrong length.
    public func judge(logits: [Float], frameLogits: [Float]? = nil) throws -> SelfTestResult {
        var checks: [(name: String, ok: Bool)] = []
        var figures: [String: LogitFigures] = [:]
        let vp = try Self.compare(reference("pytorch"), logits, count, what: "logits")
        figures["vs_pytorch"] = vp
        let minCos = try precision == "fp32" ? tol("min_cosine") : tol("min_cosine_fp16")
        if precision == "int8" {
            let minSqnr = try tol("min_sqnr_db"), minTop1 = try tol("min_top1_int8")
            checks.append((name: "vs pytorch: sqnr_db vs float >= \(jsNumber(minSqnr))", ok: vp.sqnrDb >= minSqnr))
            checks.append((name: "vs pytorch: top1_agreement vs float >= \(jsNumber(minTop1))", ok: vp.top1Agreement >= minTop1))
        } else {
            let minTop1 = try tol("min_top1")
            checks.append((name: "vs pytorch: cosine vs float >= \(jsNumber(minCos))", ok: vp.cosine >= minCos))
            checks.append((name: "vs pytorch: top1_agreement vs float >= \(jsNumber(minTop1))", ok: vp.top1Agreement >= minTop1))
        }
        if stream {
            guard let frameLogits = frameLogits else { throw GestureError("a stream's self-test needs the frame_logits of every step") }
            let fl = try Self.compare(reference("pytorch_frame_logits"), frameLogits, count, what: "frame_logits")
            figures["frame_logits_vs_pytorch"] = fl
            if precision == "int8" {  // int8 is judged by SQNR, as the export's parity judges it
                let minSqnr = try tol("min_sqnr_db")
                checks.append((name: "vs pytorch: frame_logits sqnr_db >= \(jsNumber(minSqnr))", ok: fl.sqnrDb >= minSqnr))
            } else {
                checks.append((name: "vs pytorch: frame_logits cosine >= \(jsNumber(minCos))", ok: fl.cosine >= minCos))
            }
        }
        if let host = tensors["host_runtime"] {
            let vh = try Self.compare(host.data, logits, count, what: "logits")
            figures["vs_host_runtime"] = vh
            let maxHost = host.data.reduce(0.0) { max($0, abs(Double($1))) }
            let atol = try tol("host_rtol") * max(1.0, maxHost)
            checks.append((name: "vs host runtime: max abs err <= \(toPrecision3(atol))", ok: vh.maxAbsErr <= atol))
            checks.append((name: "vs host runtime: same top-1 on every vector", ok: vh.top1Agreement == 1.0))
        }
        return SelfTestResult(figures: figures, checks: checks, count: count, kind: kind, precision: precision)
    }

    /// Run every clip through `model` (one flattened clip -> K logits) and judge the logits.
    public func runClips(_ model: ([Float]) throws -> [Float]) throws -> SelfTestResult {
        guard !stream else { throw GestureError("these vectors are a stream's: run them with runStream") }
        var logits: [Float] = []
        for i in 0..<count { logits += try model(input(i)) }
        return try judge(logits: logits)
    }

    /// Run the frames through a streaming step from the zero state, each step's new state fed back
    /// (`StreamingState`), and judge its `logits` and `frame_logits`.
    public func runStream(spec: StreamingSpec, step: ([StreamingState.Input]) throws -> [String: [Float]]) throws -> SelfTestResult {
        guard stream else { throw GestureError("these vectors are clips: run them with runClips") }
        let state = StreamingState(spec: spec)
        var logits: [Float] = [], frameLogits: [Float] = []
        for i in 0..<count {
            let out = try step(state.inputs(frame: input(i)))
            logits += try state.update(out)
            guard let fl = out["frame_logits"] else { throw GestureError("the model returned no 'frame_logits'") }
            frameLogits += fl
        }
        return try judge(logits: logits, frameLogits: frameLogits)
    }

    private func reference(_ name: String) throws -> [Float] {
        guard let t = tensors[name] else { throw GestureError("vectors.json lacks the '\(name)' tensor") }
        return t.data
    }

    private func tol(_ key: String) throws -> Double {
        guard let v = (tolerances[key] as? NSNumber)?.doubleValue else { throw GestureError("vectors.json: no tolerance '\(key)'") }
        return v
    }

    /// The figures of `test` against `ref`, both n rows of K logits one after the other.
    public static func compare(_ ref: [Float], _ test: [Float], _ n: Int, what: String = "output") throws -> LogitFigures {
        guard test.count == ref.count else {
            throw GestureError("the app's \(what) have \(test.count) values, the reference \(ref.count) (\(n) vectors of \(ref.count / n))")
        }
        let k = ref.count / n
        var maxAbs = 0.0, sumAbs = 0.0, dot = 0.0, nr = 0.0, nt = 0.0, noise = 0.0
        for i in 0..<ref.count {
            let r = Double(ref[i]), t = Double(test[i]), d = r - t
            maxAbs = d.isNaN || maxAbs.isNaN ? .nan : max(maxAbs, abs(d))  // a NaN stays NaN (and fails every check)
            sumAbs += abs(d)
            dot += r * t
            nr += r * r
            nt += t * t
            noise += d * d
        }
        func argmax(_ a: [Float], _ row: Int) -> Int {
            var best = 0
            for j in 1..<max(k, 1) where a[row * k + j] > a[row * k + best] { best = j }
            return best
        }
        var agree = 0
        for row in 0..<n where argmax(ref, row) == argmax(test, row) { agree += 1 }
        let den = nr.squareRoot() * nt.squareRoot()
        return LogitFigures(maxAbsErr: maxAbs, meanAbsErr: sumAbs / Double(ref.count),
                            cosine: den > 0 ? dot / den : (noise == 0 ? 1 : 0),
                            sqnrDb: noise == 0 ? .infinity : 10 * log10(nr / noise),
                            top1Agreement: Double(agree) / Double(n))
    }
}

/// The shortest decimal digits of |x| (no leading or trailing zeros) and n, such that
/// |x| = 0.DIGITS * 10^n (ECMAScript's Number::toString notation), from Swift's shortest description.
private func shortestDigits(_ ax: Double) -> (digits: String, n: Int) {
    let parts = ax.description.lowercased().split(separator: "e", maxSplits: 1).map(String.init)
    let exp = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
    let halves = parts[0].split(separator: ".", maxSplits: 1).map(String.init)
    let whole = halves[0], frac = halves.count > 1 ? halves[1] : ""
    var digits = Array(whole + frac)
    var n = whole.count + exp
    while digits.first == "0" { digits.removeFirst(); n -= 1 }
    while digits.last == "0" { digits.removeLast() }
    return (String(digits), n)
}

/// A number as JavaScript's `String(x)` writes it (20.0 -> "20", 1e-4 -> "0.0001"), for check names equal to demo.js's.
public func jsNumber(_ x: Double) -> String {
    if x.isNaN { return "NaN" }
    if x.isInfinite { return x > 0 ? "Infinity" : "-Infinity" }
    if x == 0 { return "0" }
    let (d, n) = shortestDigits(abs(x)), k = d.count, sign = x < 0 ? "-" : ""
    if k <= n && n <= 21 { return sign + d + String(repeating: "0", count: n - k) }
    if 0 < n && n <= 21 { return sign + String(d.prefix(n)) + "." + String(d.dropFirst(n)) }
    if -6 < n && n <= 0 { return sign + "0." + String(repeating: "0", count: -n) + d }
    let e = n - 1
    return sign + String(d.prefix(1)) + (k > 1 ? "." + String(d.dropFirst()) : "") + "e" + (e < 0 ? "-" : "+") + String(abs(e))
}

/// JavaScript's `x.toPrecision(3)`: 1e-4 -> "0.000100", 0.0123456 -> "0.0123", 1234.5 -> "1.23e+3".
public func toPrecision3(_ x: Double) -> String {
    if !x.isFinite { return jsNumber(x) }
    if x == 0 { return "0.00" }
    // 31 significant digits of |x|, then 3 of them rounded half up (ties away from zero, as JS does)
    let parts = String(format: "%.30e", abs(x)).split(separator: "e").map(String.init)
    var e = Int(parts[1]) ?? 0
    let digits = Array(parts[0].replacingOccurrences(of: ".", with: ""))
    var first3 = Int(String(digits[0..<3])) ?? 0
    if digits[3] >= "5" { first3 += 1 }
    if first3 == 1000 { first3 = 100; e += 1 }
    let d = String(first3), sign = x < 0 ? "-" : ""
    if e < -6 || e >= 3 {
        return sign + String(d.prefix(1)) + "." + String(d.dropFirst()) + "e" + (e < 0 ? "-" : "+") + String(abs(e))
    }
    let n = e + 1  // digits before the point
    if n <= 0 { return sign + "0." + String(repeating: "0", count: -n) + d }
    if n >= 3 { return sign + d }
    return sign + String(d.prefix(n)) + "." + String(d.dropFirst(n))
}
