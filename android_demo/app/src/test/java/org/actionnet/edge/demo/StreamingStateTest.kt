package org.actionnet.edge.demo

import org.json.JSONObject
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test
import java.io.File

/**
 * StreamingSpec / StreamingState: the `streaming` section of metadata.json is read as written by
 * `actionnet-edge export --streaming`, the state starts at zeros and every `<name>_out` output
 * comes back as `<name>` on the next frame. A real section (written by the Python exporter's
 * `streaming_section`) is read when -Dstreaming.metadata=FILE is given (tests/test_golden.py does).
 */
class StreamingStateTest {
    private val golden = File(System.getProperty("golden.dir") ?: "../../tests/golden")

    /** A small streaming metadata.json: 8 px frames, state s0 (1, 2, 2, 2) and s1 (1, 3), window 3. */
    private fun metadata(edit: (JSONObject) -> Unit = {}): String {
        val o = JSONObject("""{"labels": ["a", "b"], "segments": 3, "size": 8, "mean": [0, 0, 0], "std": [1, 1, 1],
            "streaming": {"window": 3,
              "inputs": [{"name": "frame", "shape": [1, 3, 8, 8]}, {"name": "s0", "shape": [1, 2, 2, 2]},
                         {"name": "s1", "shape": [1, 3]}],
              "outputs": [{"name": "logits", "shape": [1, 2]}, {"name": "frame_logits", "shape": [1, 2]},
                          {"name": "s0_out", "shape": [1, 2, 2, 2]}, {"name": "s1_out", "shape": [1, 3]}],
              "state": [{"name": "s0", "shape": [1, 2, 2, 2], "output": "s0_out"},
                        {"name": "s1", "shape": [1, 3], "output": "s1_out"}]}}""")
        edit(o.getJSONObject("streaming"))
        return o.toString()
    }

    @Test
    fun sectionIsReadFromMetadata() {
        val spec = StreamingSpec.parse(metadata())!!
        assertEquals(listOf("frame", "s0", "s1"), spec.inputs.map { it.name })
        assertEquals(listOf("logits", "frame_logits", "s0_out", "s1_out"), spec.outputs.map { it.name })
        assertEquals(listOf("s0_out", "s1_out"), spec.stateOutputs)
        assertEquals(listOf(8, 3), spec.state.map { it.size })
        assertEquals(3 * 8 * 8, spec.frame.size)
        assertEquals(3, spec.window)
        assertEquals(3, Metadata.parse(metadata()).segments)  // the rest of the file still parses as before
        // a clip artifact has no streaming section
        val cases = JSONObject(File(golden, "cases.json").readText()).getJSONArray("cases")
        assertNull(StreamingSpec.parse(File(golden, cases.getJSONObject(0).getString("metadata")).readText()))
    }

    @Test
    fun stateStartsAtZerosAndOutputsAreFedBack() {
        val state = StreamingState(StreamingSpec.parse(metadata())!!)
        // a fake model: s0_out = s0 + frame[0], s1_out = s1 * 2 + 1, logits = (s0[0], s1[0])
        val fed = ArrayList<Pair<Float, Float>>()
        for (step in 1..5) {
            val frame = FloatArray(3 * 8 * 8) { step.toFloat() }
            val inputs = state.inputs(frame)
            assertEquals(listOf("frame", "s0", "s1"), inputs.keys.toList())
            val s0 = inputs.getValue("s0")
            val s1 = inputs.getValue("s1")
            fed.add(Pair(s0[0], s1[0]))
            val outputs = hashMapOf(  // by name, in no particular order
                "s1_out" to FloatArray(3) { s1[it] * 2 + 1 },
                "frame_logits" to floatArrayOf(0f, 0f),
                "logits" to floatArrayOf(s0[0], s1[0]),
                "s0_out" to FloatArray(8) { s0[it] + frame[0] })
            val logits = state.update(outputs)
            assertArrayEquals(floatArrayOf(s0[0], s1[0]), logits, 0f)
            assertEquals(step, state.steps)
            assertEquals(step >= 3, state.ready)
        }
        // s0 before step k is 1 + 2 + ... + (k - 1); s1 is 2^(k-1) - 1: zeros first, then each output
        assertEquals(listOf(0f to 0f, 1f to 1f, 3f to 3f, 6f to 7f, 10f to 15f), fed)
        assertArrayEquals(FloatArray(8) { 15f }, state.value("s0"), 0f)
        state.reset()
        assertEquals(0, state.steps)
        assertFalse(state.ready)
        assertArrayEquals(FloatArray(3), state.value("s1"), 0f)
    }

    @Test
    fun badOutputsAreRejectedAndLeaveTheStateAlone() {
        val state = StreamingState(StreamingSpec.parse(metadata())!!)
        val good = mapOf("logits" to FloatArray(2), "s0_out" to FloatArray(8) { 1f }, "s1_out" to FloatArray(3))
        rejects("returned no 's1_out'") { state.update(good - "s1_out") }
        rejects("returned 7 floats for 's0_out'") { state.update(good + ("s0_out" to FloatArray(7))) }
        rejects("returned no 'logits'") { state.update(good - "logits") }
        rejects("the frame has 5 floats") { state.inputs(FloatArray(5)) }
        assertEquals(0, state.steps)
        assertArrayEquals(FloatArray(8), state.value("s0"), 0f)
    }

    @Test
    fun badSectionsAreRejected() {
        rejects("first streaming input must be 'frame' of shape [1, 3, 8, 8]") {
            StreamingSpec.parse(metadata { it.getJSONArray("inputs").getJSONObject(0).put("shape", org.json.JSONArray("[1, 3, 8, 9]")) })
        }
        rejects("the streaming outputs lack 's1_out'") { StreamingSpec.parse(metadata { it.getJSONArray("outputs").remove(3) }) }
        rejects("differ from its 'state' list") { StreamingSpec.parse(metadata { it.getJSONArray("state").remove(0) }) }
        rejects("window must be >= 1") { StreamingSpec.parse(metadata { it.put("window", 0) }) }
        rejects("malformed 'streaming' section") { StreamingSpec.parse(metadata { it.remove("state") }) }
    }

    @Test
    fun realExportedSectionIsRead() {
        val path = System.getProperty("streaming.metadata") ?: ""
        assumeTrue("set -Dstreaming.metadata=FILE (tests/test_golden.py does)", path.isNotEmpty())
        val text = File(path).readText()
        val raw = JSONObject(text).getJSONObject("streaming")
        val spec = StreamingSpec.parse(text)!!
        val size = Metadata.parse(text).size
        assertArrayEquals(intArrayOf(1, 3, size, size), spec.frame.shape)
        assertTrue(spec.state.isNotEmpty())
        assertEquals(spec.state.map { it.name + "_out" }, spec.stateOutputs)
        assertEquals(raw.getInt("state_floats"), spec.state.sumBy { it.size })
        assertEquals(raw.getInt("window"), spec.window)
        val state = StreamingState(spec)
        val inputs = state.inputs(FloatArray(spec.frame.size))
        assertEquals(spec.inputs.map { it.name }, inputs.keys.toList())
        assertTrue(inputs.values.drop(1).all { v -> v.all { it == 0f } })
        val outputs = spec.outputs.associate { it.name to FloatArray(it.size) { 1f } }
        state.update(outputs)
        assertTrue(spec.state.all { t -> state.value(t.name).all { it == 1f } })
    }
}
