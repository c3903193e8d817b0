package org.actionnet.edge.demo

import org.json.JSONObject
import kotlin.math.exp
import kotlin.math.floor
import kotlin.math.min

/**
 * What an exported model folder's metadata.json says (written by `actionnet-edge export`).
 * Nothing here is a constant of the app: every value comes from the file.
 */
data class Metadata(
    val labels: List<String>,
    val segments: Int,
    val size: Int,
    val resize: Int,
    val mean: DoubleArray,
    val std: DoubleArray,
    val layout: String,
    val artifact: String?,
    val target: String?
) {
    companion object {
        /** Parse and validate metadata.json; throws IllegalArgumentException naming the problem. */
        fun parse(json: String): Metadata {
            val o = JSONObject(json)
            for (key in listOf("labels", "segments", "size", "mean", "std")) {
                require(o.has(key)) { "metadata.json lacks '$key'" }
            }
            val labelsJson = o.getJSONArray("labels")
            val labels = List(labelsJson.length()) { labelsJson.getString(it) }
            require(labels.isNotEmpty()) { "metadata.json: 'labels' is empty" }
            val size = o.getInt("size")
            // same default as Python's Preprocess.from_metadata: round-half-up(size * 256 / 224)
            val resize = if (o.has("resize") && !o.isNull("resize") && o.getInt("resize") != 0) o.getInt("resize")
                         else roundHalfUp(size * 256.0 / 224.0)
            require(o.getJSONArray("mean").length() == 3 && o.getJSONArray("std").length() == 3) { "metadata.json: need 3 mean and 3 std values" }
            val mean = DoubleArray(3) { o.getJSONArray("mean").getDouble(it) }
            val std = DoubleArray(3) { o.getJSONArray("std").getDouble(it) }
            require(std.all { it > 0 }) { "metadata.json: std must be positive" }
            require(size >= 1 && o.getInt("segments") >= 1) { "metadata.json: need size >= 1 and segments >= 1" }
            require(resize >= size) { "metadata.json: resize ($resize) is smaller than size ($size)" }
            return Metadata(
                labels, o.getInt("segments"), size, resize, mean, std,
                o.optString("layout", "NCHW"),
                if (o.has("artifact")) o.getString("artifact") else o.optString("file").ifEmpty { null },
                o.optString("target").ifEmpty { null }
            )
        }
    }
}

internal fun roundHalfUp(x: Double): Int = floor(x + 0.5).toInt()

/**
 * The sliding window, preprocessing and smoothing of the demo: a line-by-line mirror of
 * `actionnet_edge/demo/window.py` (`Preprocess` + `SlidingWindow`), checked against the golden
 * files in tests/golden by GestureWindowTest.
 *
 * Frames are packed RGB bytes, row-major (H, W, 3), upright. [push] returns true when the
 * frame entered a full window; then [clip] is the model input and [update] folds its logits
 * into the smoothed scores.
 *
 * @param stride keep every stride-th frame (1 = every frame)
 * @param alpha weight of the previous scores in the moving average (0 = no smoothing)
 */
class GestureWindow(val meta: Metadata, val stride: Int = 1, val alpha: Double = 0.5) {
    init {
        require(stride >= 1) { "stride must be >= 1, got $stride" }
        require(alpha >= 0.0 && alpha < 1.0) { "smoothing alpha must be in [0, 1), got $alpha" }
    }

    private val frameLen = 3 * meta.size * meta.size
    private val frames = java.util.ArrayDeque<FloatArray>()
    var scores: DoubleArray? = null
        private set
    var seen = 0
        private set

    /** Bilinear taps along one axis, cached per frame size. */
    private class Taps(val lo: IntArray, val hi: IntArray, val f: DoubleArray)
    private var cacheKey = Pair(-1, -1)
    private var tapsY: Taps? = null
    private var tapsX: Taps? = null

    private fun taps(h: Int, w: Int, vertical: Boolean): Taps {
        val scale = meta.resize.toDouble() / min(h, w)
        val n = if (vertical) h else w
        val rn = roundHalfUp(n * scale)
        val o = Math.floorDiv(rn - meta.size, 2)
        val lo = IntArray(meta.size)
        val hi = IntArray(meta.size)
        val f = DoubleArray(meta.size)
        for (j in 0 until meta.size) {
            var s = (o + j + 0.5) * n / rn - 0.5
            s = s.coerceIn(0.0, (n - 1).toDouble())
            lo[j] = floor(s).toInt()
            hi[j] = min(lo[j] + 1, n - 1)
            f[j] = s - lo[j]
        }
        return Taps(lo, hi, f)
    }

    /** One RGB frame (H, W, 3) -> float32 (3, size, size): resize + centre crop + normalise. */
    fun preprocess(rgb: ByteArray, width: Int, height: Int): FloatArray {
        require(rgb.size == width * height * 3) { "expected ${width * height * 3} RGB bytes for ${width}x$height, got ${rgb.size}" }
        if (cacheKey != Pair(height, width)) {
            tapsY = taps(height, width, vertical = true)
            tapsX = taps(height, width, vertical = false)
            cacheKey = Pair(height, width)
        }
        val ty = tapsY!!
        val tx = tapsX!!
        val s = meta.size
        val out = FloatArray(frameLen)
        fun p(y: Int, x: Int, c: Int): Double = (rgb[(y * width + x) * 3 + c].toInt() and 0xFF).toDouble()
        for (i in 0 until s) {
            val yl = ty.lo[i]; val yh = ty.hi[i]; val fy = ty.f[i]
            for (j in 0 until s) {
                val xl = tx.lo[j]; val xh = tx.hi[j]; val fx = tx.f[j]
                for (c in 0 until 3) {
                    val top = (1 - fx) * p(yl, xl, c) + fx * p(yl, xh, c)
                    val bot = (1 - fx) * p(yh, xl, c) + fx * p(yh, xh, c)
                    val v = (1 - fy) * top + fy * bot
                    out[(c * s + i) * s + j] = ((v / 255.0 - meta.mean[c]) / meta.std[c]).toFloat()
                }
            }
        }
        return out
    }

    /** Offer one frame; true when it entered a full window (time to run the model). */
    fun push(rgb: ByteArray, width: Int, height: Int): Boolean {
        seen += 1
        if ((seen - 1) % stride != 0) return false
        frames.addLast(preprocess(rgb, width, height))
        if (frames.size > meta.segments) frames.removeFirst()
        return frames.size == meta.segments
    }

    /** The window as one clip: (1, T, 3, S, S) for NCHW, (1, T, S, S, 3) for NHWC, flattened. */
    fun clip(layout: String = meta.layout): FloatArray {
        check(frames.size == meta.segments) { "the window holds ${frames.size} of ${meta.segments} frames" }
        val out = FloatArray(meta.segments * frameLen)
        val s = meta.size
        frames.forEachIndexed { t, f ->
            if (layout == "NHWC") {
                for (c in 0 until 3) for (i in 0 until s) for (j in 0 until s) {
                    out[t * frameLen + (i * s + j) * 3 + c] = f[(c * s + i) * s + j]
                }
            } else {
                System.arraycopy(f, 0, out, t * frameLen, frameLen)
            }
        }
        return out
    }

    /** Fold one clip's logits (K) into the smoothed probabilities; returns them. */
    fun update(logits: FloatArray): DoubleArray {
        require(logits.size == meta.labels.size) { "the model gives ${logits.size} scores for ${meta.labels.size} labels" }
        val p = softmax(logits)
        val prev = scores
        scores = if (prev == null) p else DoubleArray(p.size) { alpha * prev[it] + (1 - alpha) * p[it] }
        return scores!!
    }

    /** The k best (label, smoothed probability), best first; empty before the first clip. */
    fun top(k: Int = 3): List<Pair<String, Double>> {
        val s = scores ?: return emptyList()
        // sortedByDescending is stable: ties keep label order, as numpy's stable argsort
        return s.indices.sortedByDescending { s[it] }.take(k).map { meta.labels[it] to s[it] }
    }

    fun reset() {
        frames.clear()
        scores = null
        seen = 0
    }

    companion object {
        /** Softmax in double precision, as window.softmax. */
        fun softmax(logits: FloatArray): DoubleArray {
            var m = Double.NEGATIVE_INFINITY
            for (v in logits) if (v > m) m = v.toDouble()
            val e = DoubleArray(logits.size) { exp(logits[it].toDouble() - m) }
            val sum = e.sum()
            return DoubleArray(e.size) { e[it] / sum }
        }
    }
}
