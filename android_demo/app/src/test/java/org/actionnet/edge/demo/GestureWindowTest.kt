package org.actionnet.edge.demo

import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.abs

/**
 * GestureWindow against the golden files written by the Python reference
 * (scripts/make_golden.py -> tests/golden): same ready flags, same preprocessed clips, same
 * smoothed scores and top-3 for every case.
 */
class GestureWindowTest {
    private val dir = File(System.getProperty("golden.dir") ?: "../../tests/golden")
    private val manifest = JSONObject(File(dir, "cases.json").readText())
    private val tolPre = manifest.getJSONObject("tolerance").getDouble("preprocessed")
    private val tolScores = manifest.getJSONObject("tolerance").getDouble("scores")

    private fun bytes(case: JSONObject, key: String): ByteArray =
        File(dir, case.getJSONObject("arrays").getJSONObject(key).getString("file")).readBytes()

    private fun floats(case: JSONObject, key: String): FloatArray {
        val b = ByteBuffer.wrap(bytes(case, key)).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
        return FloatArray(b.remaining()).also { b.get(it) }
    }

    private fun shape(case: JSONObject, key: String): IntArray {
        val a = case.getJSONObject("arrays").getJSONObject(key).getJSONArray("shape")
        return IntArray(a.length()) { a.getInt(it) }
    }

    private fun forEachCase(body: (JSONObject) -> Unit) {
        val cases = manifest.getJSONArray("cases")
        assertTrue("no golden cases", cases.length() > 0)
        for (i in 0 until cases.length()) body(cases.getJSONObject(i))
    }

    @Test
    fun metadataIsReadFromTheFile() = forEachCase { case ->
        val meta = Metadata.parse(File(dir, case.getString("metadata")).readText())
        val raw = JSONObject(File(dir, case.getString("metadata")).readText())
        assertEquals(raw.getInt("segments"), meta.segments)
        assertEquals(raw.getInt("size"), meta.size)
        assertEquals(raw.getJSONArray("labels").length(), meta.labels.size)
        assertTrue(meta.resize >= meta.size)
    }

    @Test
    fun windowReproducesGolden() = forEachCase { case ->
        val name = case.getString("name")
        val meta = Metadata.parse(File(dir, case.getString("metadata")).readText())
        val win = GestureWindow(meta, case.getInt("stride"), case.getDouble("alpha"))
        val (n, h, w, _) = shape(case, "frames.u8").toList()
        val frames = bytes(case, "frames.u8")
        val pre = floats(case, "preprocessed.f32")
        val frameLen = 3 * meta.size * meta.size
        val ready = case.getJSONArray("ready")
        val clips = case.getJSONArray("clips")
        var clipNo = 0
        for (f in 0 until n) {
            val r = win.push(frames.copyOfRange(f * h * w * 3, (f + 1) * h * w * 3), w, h)
            assertEquals("$name: ready flag of frame $f", ready.getBoolean(f), r)
            if (!r) continue
            val clip = win.clip("NCHW")
            val idx = clips.getJSONArray(clipNo++)
            for (t in 0 until idx.length()) {
                val k = idx.getInt(t)
                for (e in 0 until frameLen) {
                    val want = pre[k * frameLen + e]
                    val got = clip[t * frameLen + e]
                    if (abs(want - got) > tolPre) fail("$name clip ${clipNo - 1} frame $t element $e: $got != $want")
                }
            }
        }
        assertEquals(clips.length(), clipNo)

        val logits = floats(case, "logits.f32")
        val scores = floats(case, "scores.f32")
        val k = meta.labels.size
        val top3 = case.getJSONArray("top3")
        for (c in 0 until logits.size / k) {
            val s = win.update(logits.copyOfRange(c * k, (c + 1) * k))
            for (j in 0 until k) assertEquals("$name scores[$c][$j]", scores[c * k + j].toDouble(), s[j], tolScores)
            val want = top3.getJSONArray(c)
            val got = win.top(3)
            for (j in 0 until want.length()) assertEquals(want.getJSONArray(j).getString(0), got[j].first)
        }
    }

    @Test
    fun nhwcClipIsTheTransposeOfNchw() = forEachCase { case ->
        val meta = Metadata.parse(File(dir, case.getString("metadata")).readText())
        val win = GestureWindow(meta, case.getInt("stride"), case.getDouble("alpha"))
        val (n, h, w, _) = shape(case, "frames.u8").toList()
        val frames = bytes(case, "frames.u8")
        var full = false
        for (f in 0 until n) full = win.push(frames.copyOfRange(f * h * w * 3, (f + 1) * h * w * 3), w, h) || full
        assertTrue(full)
        val a = win.clip("NCHW")
        val b = win.clip("NHWC")
        val s = meta.size
        for (t in 0 until meta.segments) for (c in 0 until 3) for (i in 0 until s) for (j in 0 until s) {
            assertEquals(a[((t * 3 + c) * s + i) * s + j], b[((t * s + i) * s + j) * 3 + c], 0f)
        }
    }

    @Test(expected = IllegalArgumentException::class)
    fun metadataWithoutLabelsIsRejected() {
        Metadata.parse("""{"segments": 4, "size": 16, "mean": [0,0,0], "std": [1,1,1]}""")
    }

    @Test(expected = IllegalArgumentException::class)
    fun wrongNumberOfLogitsIsRejected() = forEachCase { case ->
        val meta = Metadata.parse(File(dir, case.getString("metadata")).readText())
        GestureWindow(meta).update(FloatArray(meta.labels.size + 1))
    }
}
