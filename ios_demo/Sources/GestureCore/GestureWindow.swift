import Foundation

/// An error in the app's input (metadata.json, frame or logits sizes); the message names it.
public struct GestureError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What an exported model folder's metadata.json says (written by `actionnet-edge export`).
/// Nothing here is a constant of the app: every value comes from the file.
public struct Metadata: Equatable {
    public let labels: [String]
    public let segments: Int
    public let size: Int
    public let resize: Int
    public let mean: [Double]
    public let std: [Double]
    public let layout: String
    public let artifact: String?
    public let target: String?

    /// Parse and validate metadata.json.
    public static func parse(_ data: Data) throws -> Metadata {
        guard let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw GestureError("metadata.json is not a JSON object")
        }
        for key in ["labels", "segments", "size", "mean", "std"] where o[key] == nil {
            throw GestureError("metadata.json lacks '\(key)'")
        }
        guard let labels = o["labels"] as? [String], !labels.isEmpty else {
            throw GestureError("metadata.json: 'labels' must be a non-empty list of strings")
        }
        guard let segments = (o["segments"] as? NSNumber)?.intValue, let size = (o["size"] as? NSNumber)?.intValue,
              let mean = (o["mean"] as? [NSNumber])?.map({ $0.doubleValue }),
              let std = (o["std"] as? [NSNumber])?.map({ $0.doubleValue }) else {
            throw GestureError("metadata.json: bad preprocessing values")
        }
        // same default as Python's Preprocess.from_metadata: round-half-up(size * 256 / 224)
        let given = (o["resize"] as? NSNumber)?.intValue ?? 0
        let resize = given != 0 ? given : roundHalfUp(Double(size) * 256.0 / 224.0)
        guard mean.count == 3, std.count == 3, std.allSatisfy({ $0 > 0 }), size >= 1, segments >= 1 else {
            throw GestureError("metadata.json: need 3 mean and 3 positive std values, size >= 1 and segments >= 1")
        }
        guard resize >= size else { throw GestureError("metadata.json: resize (\(resize)) is smaller than size (\(size))") }
        return Metadata(labels: labels, segments: segments, size: size, resize: resize, mean: mean, std: std,
                        layout: o["layout"] as? String ?? "NCHW",
                        artifact: (o["artifact"] as? String) ?? (o["file"] as? String),
                        target: o["target"] as? String)
    }
}

func roundHalfUp(_ x: Double) -> Int { Int((x + 0.5).rounded(.down)) }

/// The sliding window, preprocessing and smoothing of the demo: a line-by-line mirror of
/// `actionnet_edge/demo/window.py` (`Preprocess` + `SlidingWindow`), checked against the
/// golden files in tests/golden by GestureWindowTests.
///
/// Frames are packed RGB bytes, row-major (H, W, 3), upright. `push` returns true when the
/// frame entered a full window; then `clip()` is the model input and `update` folds its
/// logits into the smoothed scores.
public final class GestureWindow {
    public let meta: Metadata
    /// Keep every stride-th frame (1 = every frame).
    public let stride: Int
    /// Weight of the previous scores in the moving average (0 = no smoothing).
    public let alpha: Double
    public private(set) var scores: [Double]?
    public private(set) var seen = 0
    private var frames: [[Float]] = []
    private let frameLen: Int

    private struct Taps { var lo: [Int]; var hi: [Int]; var f: [Double] }
    private var cachedH = -1
    private var cachedW = -1
    private var tapsY = Taps(lo: [], hi: [], f: [])
    private var tapsX = Taps(lo: [], hi: [], f: [])

    public init(meta: Metadata, stride: Int = 1, alpha: Double = 0.5) throws {
        guard stride >= 1 else { throw GestureError("stride must be >= 1, got \(stride)") }
        guard alpha >= 0, alpha < 1 else { throw GestureError("smoothing alpha must be in [0, 1), got \(alpha)") }
        self.meta = meta
        self.stride = stride
        self.alpha = alpha
        self.frameLen = 3 * meta.size * meta.size
    }

    private func taps(h: Int, w: Int, vertical: Bool) -> Taps {
        let scale = Double(meta.resize) / Double(min(h, w))
        let n = vertical ? h : w
        let rn = roundHalfUp(Double(n) * scale)
        let d = rn - meta.size
        let o = d >= 0 ? d / 2 : -((-d + 1) / 2)  // floor division, as Python's //
        var t = Taps(lo: [Int](repeating: 0, count: meta.size), hi: [Int](repeating: 0, count: meta.size),
                     f: [Double](repeating: 0, count: meta.size))
        for j in 0..<meta.size {
            var s = (Double(o + j) + 0.5) * Double(n) / Double(rn) - 0.5
            s = min(max(s, 0), Double(n - 1))
            t.lo[j] = Int(s.rounded(.down))
            t.hi[j] = min(t.lo[j] + 1, n - 1)
            t.f[j] = s - Double(t.lo[j])
        }
        return t
    }

    /// One RGB frame (H, W, 3) -> float32 (3, size, size): resize + centre crop + normalise.
    public func preprocess(_ rgb: [UInt8], width: Int, height: Int) throws -> [Float] {
        guard rgb.count == width * height * 3 else {
            throw GestureError("expected \(width * height * 3) RGB bytes for \(width)x\(height), got \(rgb.count)")
        }
        if cachedH != height || cachedW != width {
            tapsY = taps(h: height, w: width, vertical: true)
            tapsX = taps(h: height, w: width, vertical: false)
            cachedH = height
            cachedW = width
        }
        let s = meta.size
        var out = [Float](repeating: 0, count: frameLen)
        rgb.withUnsafeBufferPointer { px in
            func p(_ y: Int, _ x: Int, _ c: Int) -> Double { Double(px[(y * width + x) * 3 + c]) }
            for i in 0..<s {
                let yl = tapsY.lo[i], yh = tapsY.hi[i], fy = tapsY.f[i]
                for j in 0..<s {
                    let xl = tapsX.lo[j], xh = tapsX.hi[j], fx = tapsX.f[j]
                    for c in 0..<3 {
                        let top = (1 - fx) * p(yl, xl, c) + fx * p(yl, xh, c)
                        let bot = (1 - fx) * p(yh, xl, c) + fx * p(yh, xh, c)
                        let v = (1 - fy) * top + fy * bot
                        out[(c * s + i) * s + j] = Float((v / 255.0 - meta.mean[c]) / meta.std[c])
                    }
                }
            }
        }
        return out
    }

    /// Offer one frame; true when it entered a full window (time to run the model).
    public func push(_ rgb: [UInt8], width: Int, height: Int) throws -> Bool {
        seen += 1
        if (seen - 1) % stride != 0 { return false }
        frames.append(try preprocess(rgb, width: width, height: height))
        if frames.count > meta.segments { frames.removeFirst() }
        return frames.count == meta.segments
    }

    /// The window as one clip: (1, T, 3, S, S) for NCHW, (1, T, S, S, 3) for NHWC, flattened.
    public func clip(layout: String? = nil) throws -> [Float] {
        guard frames.count == meta.segments else {
            throw GestureError("the window holds \(frames.count) of \(meta.segments) frames")
        }
        let s = meta.size
        if (layout ?? meta.layout) != "NHWC" { return frames.flatMap { $0 } }
        var out = [Float](repeating: 0, count: meta.segments * frameLen)
        for (t, f) in frames.enumerated() {
            for c in 0..<3 { for i in 0..<s { for j in 0..<s {
                out[t * frameLen + (i * s + j) * 3 + c] = f[(c * s + i) * s + j]
            } } }
        }
        return out
    }

    /// Fold one clip's logits (K) into the smoothed probabilities; returns them.
    @discardableResult
    public func update(_ logits: [Float]) throws -> [Double] {
        guard logits.count == meta.labels.count else {
            throw GestureError("the model gives \(logits.count) scores for \(meta.labels.count) labels")
        }
        let p = GestureWindow.softmax(logits)
        if let prev = scores {
            scores = zip(prev, p).map { alpha * $0 + (1 - alpha) * $1 }
        } else {
            scores = p
        }
        return scores!
    }

    /// The k best (label, smoothed probability), best first; empty before the first clip.
    public func top(_ k: Int = 3) -> [(label: String, score: Double)] {
        guard let s = scores else { return [] }
        // ties keep label order, as numpy's stable argsort
        let order = s.indices.sorted { s[$0] > s[$1] || (s[$0] == s[$1] && $0 < $1) }
        return order.prefix(k).map { (label: meta.labels[$0], score: s[$0]) }
    }

    public func reset() {
        frames.removeAll()
        scores = nil
        seen = 0
    }

    /// Softmax in double precision, as window.softmax.
    public static func softmax(_ logits: [Float]) -> [Double] {
        let z = logits.map(Double.init)
        let m = z.max() ?? 0
        let e = z.map { Foundation.exp($0 - m) }
        let sum = e.reduce(0, +)
        return e.map { $0 / sum }
    }
}
