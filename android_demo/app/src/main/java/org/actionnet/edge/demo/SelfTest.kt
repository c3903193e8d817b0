package org.actionnet.edge.demo

import org.json.JSONException
import org.json.JSONObject
import java.math.BigDecimal
import java.math.MathContext
import java.math.RoundingMode
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.abs
import kotlin.math.log10
import kotlin.math.sqrt

/** One tensor of vectors.bin: its name, shape and values (row-major float32). */
class VectorTensor(val name: String, val shape: IntArray, val data: FloatArray) {
    /** Row [i] of the first dimension (one vector). */
    fun row(i: Int): FloatArray {
        val per = data.size / shape[0]
        return data.copyOfRange(i * per, (i + 1) * per)
    }
}

/** Max abs error, mean abs error, cosine, SQNR (dB) and top-1 agreement of test logits against reference ones. */
class LogitFigures(val maxAbsErr: Double, val meanAbsErr: Double, val cosine: Double, val sqnrDb: Double,
                   val top1Agreement: Double) {
    /** As the browser's self-test shows it: `max abs err 1.23e-6, cosine 1.0000000, SQNR 120.4 dB, top-1 100%`. */
    fun line(): String = "max abs err ${toPrecision3(maxAbsErr)}, cosine ${fixed(cosine, 7)}, " +
        "SQNR ${fixed(sqnrDb, 1)} dB, top-1 ${"%.0f".format(java.util.Locale.ROOT, 100 * top1Agreement)}%"

    private fun fixed(v: Double, digits: Int): String =
        if (v.isNaN() || v.isInfinite()) jsNumber(v) else "%.${digits}f".format(java.util.Locale.ROOT, v)
}

/**
 * The outcome of a self-test: the figures by reference (`vs_pytorch`, for a stream
 * `frame_logits_vs_pytorch`, and `vs_host_runtime` when the vectors have it) and the checks by
 * name, in the order `judgeVectors` in web_demo/demo.js makes them.
 */
class SelfTestResult(val figures: Map<String, LogitFigures>, val checks: Map<String, Boolean>,
                     val count: Int, val kind: String, val precision: String) {
    val failures: List<String> get() = checks.filter { !it.value }.keys.toList()
    val passed: Boolean get() = failures.isEmpty()

    /** `Self-test passed (4 clips, fp32)` or `Self-test FAILED (...)`. */
    fun title(): String = "Self-test ${if (passed) "passed" else "FAILED"} " +
        "($count ${if (kind == "stream") "frames" else "clips"}, $precision)"

    /** The figures vs PyTorch and the host runtime, then the checks missed, one per line. */
    fun lines(): List<String> {
        val out = ArrayList<String>()
        figures["vs_pytorch"]?.let { out.add("vs PyTorch: ${it.line()}") }
        figures["vs_host_runtime"]?.let { out.add("vs host runtime: ${it.line()}") }
        if (failures.isNotEmpty()) out.add("missed: ${failures.joinToString("; ")}")
        return out
    }

    override fun toString(): String = (listOf(title()) + lines()).joinToString("\n")
}

/**
 * An export's test vectors (vectors.json + vectors.bin, written by
 * `actionnet_edge/export/vectors.py`) and the judge of an app's outputs on them: the mirror of
 * `actionnet_edge.verify.check.judge` and of `readVectors` / `judgeVectors` in web_demo/demo.js,
 * with the same figures and the same check names as the browser's.
 *
 * Against `pytorch`: int8, SQNR >= `min_sqnr_db` and top-1 agreement >= `min_top1_int8`;
 * fp32/fp16, cosine >= `min_cosine` / `min_cosine_fp16` and top-1 agreement >= `min_top1`; a
 * stream adds the cosine of its frame logits. Against `host_runtime` (when present): max abs
 * error <= `host_rtol` * max(1, max |host logit|) and the same top-1 on every vector.
 *
 * Usage: `val st = SelfTest.read(json, bin)`; feed [input] (i) for every i < [count] to the
 * model (a stream: frame by frame from the zero state, see [runStream]) and [judge] the outputs.
 */
class SelfTest(val doc: JSONObject, val tensors: Map<String, VectorTensor>) {
    val count: Int = doc.getInt("count")
    val kind: String = doc.optString("kind", "clips")
    val precision: String = doc.getString("precision")
    val stream: Boolean get() = kind == "stream"
    private val tolerances: JSONObject = doc.getJSONObject("tolerances")

    /** Vector [i]'s model input, flattened in the artifact's layout (a clip, or a stream's frame). */
    fun input(i: Int): FloatArray {
        require(i in 0 until count) { "vector $i of $count" }
        return tensors.getValue("input").row(i)
    }

    /**
     * Figures and checks of the app's outputs: [logits] of every vector one after the other
     * (count x K floats), and for a stream [frameLogits] likewise. Throws
     * IllegalArgumentException when an output has the wrong length.
     */
    fun judge(logits: FloatArray, frameLogits: FloatArray? = null): SelfTestResult {
        val checks = LinkedHashMap<String, Boolean>()
        val figures = LinkedHashMap<String, LogitFigures>()
        val vp = compare(reference("pytorch"), logits, count, "logits")
        figures["vs_pytorch"] = vp
        val minCos = if (precision == "fp32") tol("min_cosine") else tol("min_cosine_fp16")
        if (precision == "int8") {
            checks["vs pytorch: sqnr_db vs float >= ${jsNumber(tol("min_sqnr_db"))}"] = vp.sqnrDb >= tol("min_sqnr_db")
            checks["vs pytorch: top1_agreement vs float >= ${jsNumber(tol("min_top1_int8"))}"] =
                vp.top1Agreement >= tol("min_top1_int8")
        } else {
            checks["vs pytorch: cosine vs float >= ${jsNumber(minCos)}"] = vp.cosine >= minCos
            checks["vs pytorch: top1_agreement vs float >= ${jsNumber(tol("min_top1"))}"] = vp.top1Agreement >= tol("min_top1")
        }
        if (stream) {
            requireNotNull(frameLogits) { "a stream's self-test needs the frame_logits of every step" }
            val fl = compare(reference("pytorch_frame_logits"), frameLogits, count, "frame_logits")
            figures["frame_logits_vs_pytorch"] = fl
            if (precision == "int8") {  // int8 is judged by SQNR, as the export's parity judges it
                checks["vs pytorch: frame_logits sqnr_db >= ${jsNumber(tol("min_sqnr_db"))}"] = fl.sqnrDb >= tol("min_sqnr_db")
            } else {
                checks["vs pytorch: frame_logits cosine >= ${jsNumber(minCos)}"] = fl.cosine >= minCos
            }
        }
        val host = tensors["host_runtime"]
        if (host != null) {
            val vh = compare(host.data, logits, count, "logits")
            figures["vs_host_runtime"] = vh
            var maxHost = 0.0
            for (v in host.data) maxHost = Math.max(maxHost, abs(v.toDouble()))
            val atol = tol("host_rtol") * Math.max(1.0, maxHost)
            checks["vs host runtime: max abs err <= ${toPrecision3(atol)}"] = vh.maxAbsErr <= atol
            checks["vs host runtime: same top-1 on every vector"] = vh.top1Agreement == 1.0
        }
        return SelfTestResult(figures, checks, count, kind, precision)
    }

    /** Run every clip through [model] (one flattened clip -> K logits) and judge the logits. */
    fun runClips(model: (FloatArray) -> FloatArray): SelfTestResult {
        require(!stream) { "these vectors are a stream's: run them with runStream" }
        val logits = ArrayList<FloatArray>()
        for (i in 0 until count) logits.add(model(input(i)))
        return judge(concat(logits))
    }

    /**
     * Run the frames through a streaming step from the zero state, each step's new state fed back
     * ([StreamingState]), and judge its `logits` and `frame_logits`.
     */
    fun runStream(spec: StreamingSpec, step: (Map<String, FloatArray>) -> Map<String, FloatArray>): SelfTestResult {
        require(stream) { "these vectors are clips: run them with runClips" }
        val state = StreamingState(spec)
        val logits = ArrayList<FloatArray>()
        val frameLogits = ArrayList<FloatArray>()
        for (i in 0 until count) {
            val out = step(state.inputs(input(i)))
            logits.add(state.update(out))
            frameLogits.add(out["frame_logits"] ?: throw IllegalArgumentException("the model returned no 'frame_logits'"))
        }
        return judge(concat(logits), concat(frameLogits))
    }

    private fun reference(name: String): FloatArray =
        tensors[name]?.data ?: throw IllegalArgumentException("vectors.json lacks the '$name' tensor")

    private fun tol(key: String): Double = try {
        tolerances.getDouble(key)
    } catch (e: JSONException) {
        throw IllegalArgumentException("vectors.json: no tolerance '$key'")
    }

    companion object {
        const val FORMAT = "actionnet-edge.vectors/1"

        /** The (vectors.json, vectors.bin) file names metadata.json's `vectors` section gives, or null without one. */
        fun files(metadataJson: String): Pair<String, String>? {
            val v = JSONObject(metadataJson).optJSONObject("vectors") ?: return null
            return Pair(v.optString("file", "vectors.json"), v.optString("data", "vectors.bin"))
        }

        fun read(json: String, bin: ByteArray): SelfTest {
            val doc = try {
                JSONObject(json)
            } catch (e: JSONException) {
                throw IllegalArgumentException("vectors.json is not a JSON object (${e.message})")
            }
            return read(doc, bin)
        }

        /** The vectors over vectors.bin's bytes; throws IllegalArgumentException naming the problem. */
        fun read(doc: JSONObject, bin: ByteArray): SelfTest {
            val format = doc.opt("format")
            require(format == FORMAT) { "vectors.json: format '$format', expected '$FORMAT'" }
            val tensors = LinkedHashMap<String, VectorTensor>()
            try {
                val table = doc.getJSONArray("tensors")
                for (k in 0 until table.length()) {
                    val t = table.getJSONObject(k)
                    val name = t.getString("name")
                    val dims = t.getJSONArray("shape")
                    val shape = IntArray(dims.length()) { dims.getInt(it) }
                    val n = shape.fold(1L) { a, d -> a * d }
                    val offset = t.getLong("offset")
                    require(offset >= 0 && n >= 0 && offset + 4 * n <= bin.size) {
                        "vectors.bin is too short for tensor '$name' (${4 * n} bytes at offset $offset, the file has ${bin.size})"
                    }
                    val data = FloatArray(n.toInt())
                    ByteBuffer.wrap(bin, offset.toInt(), 4 * n.toInt()).slice().order(ByteOrder.LITTLE_ENDIAN)
                        .asFloatBuffer().get(data)
                    tensors[name] = VectorTensor(name, shape, data)
                }
                doc.getInt("count")
                doc.getString("precision")
                doc.getJSONObject("tolerances")
            } catch (e: JSONException) {
                throw IllegalArgumentException("vectors.json is malformed (${e.message})")
            }
            for (name in listOf("input", "pytorch")) {
                require(name in tensors) { "vectors.json lacks the '$name' tensor" }
            }
            val count = doc.getInt("count")
            require(count >= 1) { "vectors.json: count must be >= 1, got $count" }
            for (t in tensors.values) {
                require(t.shape.isNotEmpty() && t.shape[0] == count) {
                    "vectors.json: tensor '${t.name}' has shape ${t.shape.toList()}, expected $count vectors first"
                }
            }
            if (doc.optString("kind") == "stream") {
                require("pytorch_frame_logits" in tensors) { "vectors.json lacks the 'pytorch_frame_logits' tensor" }
            }
            return SelfTest(doc, tensors)
        }

        /** The figures of [test] against [ref], both n rows of K logits one after the other. */
        fun compare(ref: FloatArray, test: FloatArray, n: Int, what: String = "output"): LogitFigures {
            require(test.size == ref.size) {
                "the app's $what have ${test.size} values, the reference ${ref.size} ($n vectors of ${ref.size / n})"
            }
            val k = ref.size / n
            var maxAbs = 0.0
            var sumAbs = 0.0
            var dot = 0.0
            var nr = 0.0
            var nt = 0.0
            var noise = 0.0
            for (i in ref.indices) {
                val r = ref[i].toDouble()
                val t = test[i].toDouble()
                val d = r - t
                maxAbs = Math.max(maxAbs, abs(d))  // Math.max: a NaN stays NaN (and fails every check)
                sumAbs += abs(d)
                dot += r * t
                nr += r * r
                nt += t * t
                noise += d * d
            }
            var agree = 0
            for (row in 0 until n) if (argmax(ref, row, k) == argmax(test, row, k)) agree += 1
            val den = sqrt(nr) * sqrt(nt)
            return LogitFigures(maxAbs, sumAbs / ref.size, if (den > 0) dot / den else (if (noise == 0.0) 1.0 else 0.0),
                                if (noise == 0.0) Double.POSITIVE_INFINITY else 10 * log10(nr / noise), agree.toDouble() / n)
        }

        /** The first index of the largest of row [row]'s [k] values (as numpy's and demo.js's argmax). */
        private fun argmax(a: FloatArray, row: Int, k: Int): Int {
            var best = 0
            for (j in 1 until k) if (a[row * k + j] > a[row * k + best]) best = j
            return best
        }

        private fun concat(rows: List<FloatArray>): FloatArray {
            val out = FloatArray(rows.sumBy { it.size })
            var at = 0
            for (r in rows) {
                r.copyInto(out, at)
                at += r.size
            }
            return out
        }
    }
}

/** A number as JavaScript's `String(x)` writes it (20.0 -> "20", 1e-4 -> "0.0001"), for check names equal to demo.js's. */
fun jsNumber(x: Double): String {
    if (x.isNaN()) return "NaN"
    if (x.isInfinite()) return if (x > 0) "Infinity" else "-Infinity"
    if (x == 0.0) return "0"
    val a = abs(x)
    if (a >= 1e-6 && a < 1e21) return BigDecimal(x.toString()).stripTrailingZeros().toPlainString()
    val d = BigDecimal(x.toString()).stripTrailingZeros()
    val e = d.precision() - d.scale() - 1
    val digits = d.unscaledValue().abs().toString()
    val mantissa = if (digits.length > 1) digits[0] + "." + digits.substring(1) else digits
    return (if (x < 0) "-" else "") + mantissa + "e" + (if (e < 0) "-" else "+") + abs(e)
}

/** JavaScript's `x.toPrecision(3)`: 1e-4 -> "0.000100", 0.0123456 -> "0.0123", 1234.5 -> "1.23e+3". */
fun toPrecision3(x: Double): String {
    if (x.isNaN() || x.isInfinite()) return jsNumber(x)
    if (x == 0.0) return "0.00"
    val r = BigDecimal(abs(x)).round(MathContext(3, RoundingMode.HALF_UP))  // exact value, ties up as JS does
    val e = r.precision() - r.scale() - 1
    val sign = if (x < 0) "-" else ""
    if (e < -6 || e >= 3) {
        val digits = r.unscaledValue().toString().padEnd(3, '0').substring(0, 3)
        return sign + digits[0] + "." + digits.substring(1) + "e" + (if (e < 0) "-" else "+") + abs(e)
    }
    return sign + r.setScale(2 - e, RoundingMode.HALF_UP).toPlainString()
}
