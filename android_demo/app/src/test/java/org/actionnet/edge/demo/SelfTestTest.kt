package org.actionnet.edge.demo

import org.json.JSONArray
import org.json.JSONObject
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.Random

/**
 * SelfTest against a real export's test vectors: -Dselftest.vectors=FOLDER holds vectors.json and
 * vectors.bin as `actionnet-edge export` wrote them and expected.json, the figures and checks of
 * the Python judge (`actionnet_edge.verify.check.judge`) when the app's output is the host
 * runtime's (tests/test_golden.py writes the folder). -Dselftest.stream_vectors=FOLDER does the
 * same for a streaming step's vectors. Without the properties those tests are skipped.
 */
class SelfTestTest {
    private fun folder(property: String): File {
        val path = System.getProperty(property) ?: ""
        assumeTrue("set -D$property=FOLDER (tests/test_golden.py does)", path.isNotEmpty())
        return File(path)
    }

    private fun load(dir: File): SelfTest =
        SelfTest.read(File(dir, "vectors.json").readText(), File(dir, "vectors.bin").readBytes())

    private fun expected(dir: File): JSONObject = JSONObject(File(dir, "expected.json").readText())

    /** The tensor expected.json says the Python judge took as the app's output (host_runtime, else pytorch). */
    private fun output(st: SelfTest, exp: JSONObject, key: String = "output"): FloatArray =
        st.tensors.getValue(exp.getString(key)).data.copyOf()

    @Test
    fun referenceOutputPasses() {
        val dir = folder("selftest.vectors")
        val st = load(dir)
        val exp = expected(dir)
        assertFalse(st.stream)
        val res = st.judge(output(st, exp))
        assertTrue(res.toString(), res.passed)
        assertEquals(emptyList<String>(), res.failures)
        assertEquals(st.tensors.getValue("input").shape[0], st.count)
        assertEquals(st.tensors.getValue("input").data.size / st.count, st.input(st.count - 1).size)
        // runClips feeds every input row in order: a "model" that looks its row up gives the same
        val rows = (0 until st.count).map { st.input(it).toList() }
        val ref = output(st, exp)
        val k = ref.size / st.count
        val run = st.runClips { clip ->
            val i = rows.indexOf(clip.toList())
            ref.copyOfRange(i * k, (i + 1) * k)
        }
        assertTrue(run.passed)
        assertEquals(res.figures.getValue("vs_pytorch").cosine, run.figures.getValue("vs_pytorch").cosine, 0.0)
        if (st.precision == "fp32" && st.doc.getJSONObject("tolerances").getDouble("min_cosine") == 0.99999) {
            // the names demo.js gives its checks (JavaScript prints 1.0 as "1")
            assertEquals(listOf("vs pytorch: cosine vs float >= 0.99999", "vs pytorch: top1_agreement vs float >= 1"),
                         res.checks.keys.take(2))
        }
        assertTrue(res.title(), res.title().startsWith("Self-test passed (${st.count} clips, ${st.precision})"))
    }

    @Test
    fun figuresEqualThePythonJudge() {
        val dir = folder("selftest.vectors")
        val st = load(dir)
        val exp = expected(dir)
        sameAsPython(exp, st.judge(output(st, exp)))
    }

    @Test
    fun flippedTop1Fails() {
        val dir = folder("selftest.vectors")
        val st = load(dir)
        val out = output(st, expected(dir))
        val k = out.size / st.count
        // vector 0: its top logit drops below the smallest one, so another class comes first
        var best = 0
        for (j in 1 until k) if (out[j] > out[best]) best = j
        out[best] = out.copyOfRange(0, k).min()!! - 1f
        val res = st.judge(out)
        assertFalse(res.passed)
        assertEquals(1.0 - 1.0 / st.count, res.figures.getValue("vs_pytorch").top1Agreement, 1e-12)
        assertTrue(res.failures.toString(), res.failures.any { it.startsWith("vs pytorch: top1_agreement vs float >= ") })
        if ("host_runtime" in st.tensors) {
            assertTrue(res.failures.toString(), "vs host runtime: same top-1 on every vector" in res.failures)
        }
        assertTrue(res.lines().last().startsWith("missed: "))
        assertTrue(res.title().startsWith("Self-test FAILED"))
    }

    @Test
    fun noisyOutputFails() {
        val dir = folder("selftest.vectors")
        val st = load(dir)
        val rng = Random(7)
        val out = output(st, expected(dir))
        for (i in out.indices) out[i] *= 1f + 0.5f * (2 * rng.nextFloat() - 1)  // ~29 % RMS noise: SQNR ~ 11 dB
        val res = st.judge(out)
        assertFalse(res.passed)
        val parity = if (st.precision == "int8") "vs pytorch: sqnr_db vs float >= " else "vs pytorch: cosine vs float >= "
        assertTrue(res.failures.toString(), res.failures.any { it.startsWith(parity) })
        if ("host_runtime" in st.tensors) {
            assertTrue(res.failures.toString(), res.failures.any { it.startsWith("vs host runtime: max abs err <= ") })
        }
    }

    @Test
    fun badFilesAreRejected() {
        val dir = folder("selftest.vectors")
        val json = File(dir, "vectors.json").readText()
        val bin = File(dir, "vectors.bin").readBytes()
        val last = JSONObject(json).getJSONArray("tensors").let { it.getJSONObject(it.length() - 1).getString("name") }
        rejects("vectors.bin is too short for tensor '$last'") { SelfTest.read(json, bin.copyOf(bin.size - 4)) }
        rejects("format 'actionnet-edge.vectors/0', expected 'actionnet-edge.vectors/1'") {
            SelfTest.read(JSONObject(json).put("format", "actionnet-edge.vectors/0"), bin)
        }
        rejects("format 'null'") { SelfTest.read(JSONObject(json).apply { remove("format") }, bin) }
        rejects("vectors.json is not a JSON object") { SelfTest.read("not json", bin) }
        rejects("vectors.json lacks the 'pytorch' tensor") {
            val doc = JSONObject(json)
            val kept = JSONArray()
            val table = doc.getJSONArray("tensors")
            for (i in 0 until table.length()) if (table.getJSONObject(i).getString("name") != "pytorch") kept.put(table.getJSONObject(i))
            SelfTest.read(doc.put("tensors", kept), bin)
        }
        rejects("vectors.json is malformed") { SelfTest.read(JSONObject(json).apply { remove("tolerances") }, bin) }
        val st = SelfTest.read(json, bin)
        val n = st.tensors.getValue("pytorch").data.size
        rejects("the app's logits have ${n - 1} values, the reference $n") { st.judge(FloatArray(n - 1)) }
        rejects("vector ${st.count} of ${st.count}") { st.input(st.count) }
    }

    @Test
    fun numbersAreWrittenAsJavaScriptDoes() {
        // String(x) and x.toPrecision(3) in a browser, which name demo.js's checks
        assertEquals(listOf("20", "0.99999", "1", "0.98", "0.0001", "0.02", "0.000001", "1e-7", "123456", "-2.5"),
                     listOf(20.0, 0.99999, 1.0, 0.98, 1e-4, 0.02, 1e-6, 1e-7, 123456.0, -2.5).map { jsNumber(it) })
        assertEquals(listOf("0.000100", "0.0123", "1.23e+3", "1.00e-7", "0.00", "4.00", "1.00e+3", "0.0600", "1.25", "12.3"),
                     listOf(1e-4, 0.0123456, 1234.5, 1e-7, 0.0, 4.0, 999.6, 0.06, 1.245, 12.34).map { toPrecision3(it) })
        assertEquals("Infinity", jsNumber(Double.POSITIVE_INFINITY))
    }

    /** Small vectors written here: clips fed in order, a stream's state fed back from zeros, metadata's file names. */
    @Test
    fun runFeedsEveryVectorAndTheStateBack() {
        // 3 frames of 1x3x2x2 floats, K = 2 logits; the "model" below adds up the frame and the state
        val frames = Array(3) { i -> FloatArray(12) { (i + 1).toFloat() } }
        val logits = Array(3) { FloatArray(2) }
        val frameLogits = Array(3) { FloatArray(2) }
        var s = 0f
        for (i in 0 until 3) {
            val f = frames[i].sum()
            frameLogits[i] = floatArrayOf(f, -f)
            logits[i] = floatArrayOf(f + s, -(f + s))
            s += f
        }
        val (doc, bin) = vectors("stream", listOf("input" to Pair(intArrayOf(3, 1, 3, 2, 2), frames),
            "pytorch" to Pair(intArrayOf(3, 1, 2), logits), "pytorch_frame_logits" to Pair(intArrayOf(3, 1, 2), frameLogits)))
        val st = SelfTest.read(doc, bin)
        assertTrue(st.stream)
        assertArrayEquals(frames[1], st.input(1), 0f)
        val spec = StreamingSpec.parse("""{"size": 2, "streaming": {"window": 1,
            "inputs": [{"name": "frame", "shape": [1, 3, 2, 2]}, {"name": "s", "shape": [1, 1]}],
            "outputs": [{"name": "logits", "shape": [1, 2]}, {"name": "frame_logits", "shape": [1, 2]}, {"name": "s_out", "shape": [1, 1]}],
            "state": [{"name": "s", "shape": [1, 1], "output": "s_out"}]}}""")!!
        val seen = ArrayList<Float>()
        val res = st.runStream(spec) { inputs ->
            val f = inputs.getValue("frame").sum()
            val state = inputs.getValue("s")[0]
            seen.add(state)
            mapOf("logits" to floatArrayOf(f + state, -(f + state)), "frame_logits" to floatArrayOf(f, -f),
                  "s_out" to floatArrayOf(state + f))
        }
        assertEquals(listOf(0f, 12f, 36f), seen)
        assertTrue(res.toString(), res.passed)
        assertEquals(listOf("vs pytorch: cosine vs float >= 0.99999", "vs pytorch: top1_agreement vs float >= 1",
                            "vs pytorch: frame_logits cosine >= 0.99999"), res.checks.keys.toList())
        assertEquals(Double.POSITIVE_INFINITY, res.figures.getValue("frame_logits_vs_pytorch").sqnrDb, 0.0)
        rejects("needs the frame_logits") { st.judge(FloatArray(6)) }
        rejects("run them with runStream") { st.runClips { it } }
        // clips: each row once, in order
        val (clipDoc, clipBin) = vectors("clips", listOf("input" to Pair(intArrayOf(3, 1, 12), frames),
            "pytorch" to Pair(intArrayOf(3, 1, 2), frameLogits)))
        val clips = SelfTest.read(clipDoc, clipBin)
        val fed = ArrayList<Float>()
        val clipRes = clips.runClips { clip -> fed.add(clip[0]); floatArrayOf(clip.sum(), -clip.sum()) }
        assertEquals(listOf(1f, 2f, 3f), fed)
        assertTrue(clipRes.passed)
        assertEquals(Pair("v.json", "v.bin"), SelfTest.files("""{"vectors": {"file": "v.json", "data": "v.bin"}}"""))
        assertNull(SelfTest.files("""{"labels": ["a"]}"""))
    }

    @Test
    fun streamVectorsAreJudgedWithTheirFrameLogits() {
        val dir = folder("selftest.stream_vectors")
        val st = load(dir)
        val exp = expected(dir)
        assertTrue(st.stream)
        val logits = output(st, exp)
        val frameLogits = output(st, exp, "frame_output")
        val res = st.judge(logits, frameLogits)
        assertTrue(res.toString(), res.passed)
        assertTrue(res.title().contains("${st.count} frames"))
        sameAsPython(exp, res)
        val rng = Random(3)
        for (i in frameLogits.indices) frameLogits[i] *= 1f + 0.5f * (2 * rng.nextFloat() - 1)
        val bad = st.judge(logits, frameLogits)
        // int8 frame logits are judged by SQNR (as the export's parity), fp32/fp16 by cosine
        val check = if (st.precision == "int8") "vs pytorch: frame_logits sqnr_db >= " else "vs pytorch: frame_logits cosine >= "
        assertTrue(bad.failures.toString(), bad.failures.any { it.startsWith(check) })
        assertEquals(1, bad.failures.size)  // the logits themselves are still right
        rejects("the app's frame_logits have 1 values") { st.judge(logits, FloatArray(1)) }
    }

    /** [res] has the Python judge's figures (to 1e-5 relative), check outcomes in order and check names
     *  (Python writes 1.0 where JavaScript, and so this class, write 1; and 3 significant digits differently). */
    private fun sameAsPython(exp: JSONObject, res: SelfTestResult) {
        val figures = exp.getJSONObject("figures")
        assertEquals(keys(figures), res.figures.keys)
        for (ref in keys(figures)) {
            val want = figures.getJSONObject(ref)
            val got = res.figures.getValue(ref)
            close("$ref max_abs_err", number(want, "max_abs_err"), got.maxAbsErr)
            close("$ref mean_abs_err", number(want, "mean_abs_err"), got.meanAbsErr)
            close("$ref cosine", number(want, "cosine"), got.cosine)
            close("$ref sqnr_db", number(want, "sqnr_db"), got.sqnrDb)
            close("$ref top1_agreement", number(want, "top1_agreement"), got.top1Agreement)
        }
        val checks = exp.getJSONArray("checks")
        val names = res.checks.keys.toList()
        assertEquals(checks.length(), names.size)
        for (i in 0 until checks.length()) {
            val (pyName, ok) = Pair(checks.getJSONArray(i).getString(0), checks.getJSONArray(i).getBoolean(1))
            assertEquals(pyName, ok, res.checks.getValue(names[i]))
            sameName(pyName, names[i])
        }
        assertEquals(exp.getBoolean("passed"), res.passed)
    }

    /** "vs pytorch: top1_agreement vs float >= 1.0" (Python) and "... >= 1" (here): same text, same number. */
    private fun sameName(py: String, kt: String) {
        val op = listOf(" >= ", " <= ").firstOrNull { py.contains(it) }
        if (op == null) {
            assertEquals(py, kt)
            return
        }
        assertEquals(py.substringBeforeLast(op), kt.substringBeforeLast(op))
        val a = py.substringAfterLast(op).toDouble()
        val b = kt.substringAfterLast(op).toDouble()
        assertTrue("$py vs $kt", Math.abs(a - b) <= 5e-3 * Math.abs(a))  // both are at least 3 significant digits
    }

    private fun keys(o: JSONObject): Set<String> {
        val out = LinkedHashSet<String>()
        val it = o.keys()
        while (it.hasNext()) out.add(it.next())
        return out
    }

    /** A number of expected.json; non-finite ones are written as strings ("Infinity"). */
    private fun number(o: JSONObject, key: String): Double {
        val v = o.get(key)
        return if (v is String) v.toDouble() else (v as Number).toDouble()
    }

    private fun close(what: String, want: Double, got: Double) {
        if (want.isInfinite() || want.isNaN()) {
            assertEquals(what, want, got, 0.0)
            return
        }
        assertTrue("$what: Python $want, here $got", Math.abs(want - got) <= 1e-5 * Math.max(Math.abs(want), 1e-12))
    }

    /** vectors.json + vectors.bin of the given tensors (rows of floats), fp32 with the default tolerances. */
    private fun vectors(kind: String, tensors: List<Pair<String, Pair<IntArray, Array<FloatArray>>>>): Pair<JSONObject, ByteArray> {
        val table = JSONArray()
        var offset = 0
        val floats = ArrayList<Float>()
        for ((name, t) in tensors) {
            table.put(JSONObject().put("name", name).put("offset", offset).put("shape", JSONArray(t.first.toList())))
            for (row in t.second) for (v in row) floats.add(v)
            offset = 4 * floats.size
        }
        val buf = ByteBuffer.allocate(4 * floats.size).order(ByteOrder.LITTLE_ENDIAN)
        for (v in floats) buf.putFloat(v)
        val doc = JSONObject().put("format", SelfTest.FORMAT).put("kind", kind).put("precision", "fp32")
            .put("count", tensors[0].second.first.first()).put("tensors", table)
            .put("tolerances", JSONObject("""{"min_cosine": 0.99999, "min_cosine_fp16": 0.999, "min_top1": 1.0,
                "min_sqnr_db": 20.0, "min_top1_int8": 0.98, "host_rtol": 0.0001}"""))
        return Pair(doc, buf.array())
    }
}
