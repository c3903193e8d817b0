import Foundation
import XCTest
@testable import GestureCore

/// GestureWindow against the golden files written by the Python reference
/// (scripts/make_golden.py -> tests/golden): same ready flags, same preprocessed clips, same
/// smoothed scores and top-3 for every case.
final class GestureWindowTests: XCTestCase {
    /// tests/golden of this repository, found from this file's path (override: GOLDEN_DIR).
    static let dir: URL = {
        if let env = ProcessInfo.processInfo.environment["GOLDEN_DIR"] { return URL(fileURLWithPath: env) }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tests/golden")
    }()

    var manifest: [String: Any] = [:]
    var cases: [[String: Any]] = []

    override func setUpWithError() throws {
        let data = try Data(contentsOf: Self.dir.appendingPathComponent("cases.json"))
        manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        cases = try XCTUnwrap(manifest["cases"] as? [[String: Any]])
        XCTAssertFalse(cases.isEmpty)
    }

    func tolerance(_ key: String) -> Double {
        ((manifest["tolerance"] as? [String: Any])?[key] as? NSNumber)?.doubleValue ?? 0
    }

    func array(_ c: [String: Any], _ key: String) throws -> (data: Data, shape: [Int]) {
        let spec = try XCTUnwrap((c["arrays"] as? [String: Any])?[key] as? [String: Any])
        let file = try XCTUnwrap(spec["file"] as? String)
        let shape = try XCTUnwrap(spec["shape"] as? [Int])
        return (try Data(contentsOf: Self.dir.appendingPathComponent(file)), shape)
    }

    func floats(_ c: [String: Any], _ key: String) throws -> [Float] {
        let d = try array(c, key).data
        return d.withUnsafeBytes { raw in
            (0..<(d.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    func metadata(_ c: [String: Any]) throws -> Metadata {
        try Metadata.parse(Data(contentsOf: Self.dir.appendingPathComponent(try XCTUnwrap(c["metadata"] as? String))))
    }

    func testWindowReproducesGolden() throws {
        for c in cases {
            let name = c["name"] as? String ?? "?"
            let meta = try metadata(c)
            let win = try GestureWindow(meta: meta, stride: c["stride"] as! Int, alpha: (c["alpha"] as! NSNumber).doubleValue)
            let (frames, shape) = try array(c, "frames.u8")
            let bytes = [UInt8](frames)
            let (n, h, w) = (shape[0], shape[1], shape[2])
            let pre = try floats(c, "preprocessed.f32")
            let frameLen = 3 * meta.size * meta.size
            let ready = try XCTUnwrap(c["ready"] as? [Bool])
            let clips = try XCTUnwrap(c["clips"] as? [[Int]])
            var clipNo = 0
            for f in 0..<n {
                let r = try win.push(Array(bytes[(f * h * w * 3)..<((f + 1) * h * w * 3)]), width: w, height: h)
                XCTAssertEqual(r, ready[f], "\(name): ready flag of frame \(f)")
                guard r else { continue }
                let clip = try win.clip(layout: "NCHW")
                for (t, k) in clips[clipNo].enumerated() {
                    for e in 0..<frameLen where abs(clip[t * frameLen + e] - pre[k * frameLen + e]) > Float(tolerance("preprocessed")) {
                        XCTFail("\(name) clip \(clipNo) frame \(t) element \(e): \(clip[t * frameLen + e]) != \(pre[k * frameLen + e])")
                        return
                    }
                }
                clipNo += 1
            }
            XCTAssertEqual(clipNo, clips.count)

            let logits = try floats(c, "logits.f32"), scores = try floats(c, "scores.f32")
            let k = meta.labels.count
            let top3 = try XCTUnwrap(c["top3"] as? [[[Any]]])
            for i in 0..<(logits.count / k) {
                let s = try win.update(Array(logits[(i * k)..<((i + 1) * k)]))
                for j in 0..<k {
                    XCTAssertEqual(s[j], Double(scores[i * k + j]), accuracy: tolerance("scores"), "\(name) scores[\(i)][\(j)]")
                }
                XCTAssertEqual(win.top(3).map { $0.label }, top3[i].map { $0[0] as! String }, "\(name) top-3 of clip \(i)")
            }
        }
    }

    func testNHWCClipIsTheTransposeOfNCHW() throws {
        for c in cases {
            let meta = try metadata(c)
            let win = try GestureWindow(meta: meta, stride: c["stride"] as! Int)
            let (frames, shape) = try array(c, "frames.u8")
            let bytes = [UInt8](frames)
            let (n, h, w) = (shape[0], shape[1], shape[2])
            var full = false
            for f in 0..<n { full = try win.push(Array(bytes[(f * h * w * 3)..<((f + 1) * h * w * 3)]), width: w, height: h) || full }
            XCTAssertTrue(full)
            let a = try win.clip(layout: "NCHW"), b = try win.clip(layout: "NHWC"), s = meta.size
            for t in 0..<meta.segments { for ch in 0..<3 { for i in 0..<s { for j in 0..<s {
                XCTAssertEqual(a[((t * 3 + ch) * s + i) * s + j], b[((t * s + i) * s + j) * 3 + ch])
            } } } }
        }
    }

    func testBadInputIsRejected() throws {
        XCTAssertThrowsError(try Metadata.parse(Data(#"{"segments": 4, "size": 16, "mean": [0,0,0], "std": [1,1,1]}"#.utf8)))
        let meta = try metadata(cases[0])
        XCTAssertThrowsError(try GestureWindow(meta: meta).update([Float](repeating: 0, count: meta.labels.count + 1)))
        XCTAssertThrowsError(try GestureWindow(meta: meta).push([0, 0, 0], width: 2, height: 2))
        XCTAssertThrowsError(try GestureWindow(meta: meta, alpha: 1.0))
    }
}
