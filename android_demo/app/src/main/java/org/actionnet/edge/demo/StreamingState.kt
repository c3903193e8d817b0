package org.actionnet.edge.demo

import org.json.JSONArray
import org.json.JSONException
import org.json.JSONObject

/** A float32 tensor of a streaming artifact as metadata.json lists it: name and shape. */
class TensorSpec(val name: String, val shape: IntArray) {
    /** Number of floats. */
    val size: Int = shape.fold(1) { a, d -> a * d }
}

/**
 * The `streaming` section of metadata.json (`actionnet-edge export --streaming`). The step takes
 * `frame` (1, 3, S, S) and every state tensor, and returns `logits` (the average of the last
 * [window] frame logits), `frame_logits` and, for every state tensor, its new value under the
 * output name listed for it (`<name>_out`). Mirror of `StreamState` in web_demo/demo.js and of
 * `actionnet_edge.export.streaming.StreamRunner`.
 */
class StreamingSpec(
    /** `frame`, then the state tensors, in the artifact's input order. */
    val inputs: List<TensorSpec>,
    /** `logits`, `frame_logits`, then the new state tensors, in the artifact's output order. */
    val outputs: List<TensorSpec>,
    val state: List<TensorSpec>,
    /** `stateOutputs[i]` is the output fed back as `state[i]` for the next frame. */
    val stateOutputs: List<String>,
    val window: Int
) {
    val frame: TensorSpec get() = inputs[0]

    companion object {
        /** The `streaming` section of metadata.json, or null for a clip artifact; throws
         *  IllegalArgumentException naming the problem. */
        fun parse(json: String): StreamingSpec? {
            val o = JSONObject(json)
            if (!o.has("streaming")) return null
            val spec = try {
                val s = o.getJSONObject("streaming")
                val st = s.getJSONArray("state")
                StreamingSpec(tensors(s.getJSONArray("inputs")), tensors(s.getJSONArray("outputs")), tensors(st),
                              List(st.length()) { st.getJSONObject(it).getString("output") }, s.getInt("window"))
            } catch (e: JSONException) {
                throw IllegalArgumentException("metadata.json: malformed 'streaming' section (${e.message})")
            }
            val size = o.optInt("size", -1)
            require(spec.inputs.isNotEmpty() && spec.frame.name == "frame" &&
                    spec.frame.shape.contentEquals(intArrayOf(1, 3, size, size))) {
                "metadata.json: the first streaming input must be 'frame' of shape [1, 3, $size, $size]"
            }
            val after = spec.inputs.drop(1)
            require(after.size == spec.state.size &&
                    after.indices.all { after[it].name == spec.state[it].name && after[it].shape.contentEquals(spec.state[it].shape) }) {
                "metadata.json: the streaming inputs after 'frame' differ from its 'state' list"
            }
            val names = spec.outputs.map { it.name }
            val missing = (listOf("logits") + spec.stateOutputs).firstOrNull { it !in names }
            require(missing == null) { "metadata.json: the streaming outputs lack '$missing'" }
            require(spec.window >= 1) { "metadata.json: the streaming window must be >= 1, got ${spec.window}" }
            return spec
        }

        private fun tensors(a: JSONArray): List<TensorSpec> = List(a.length()) { i ->
            val t = a.getJSONObject(i)
            val shape = t.getJSONArray("shape")
            TensorSpec(t.getString("name"), IntArray(shape.length()) { shape.getInt(it) })
        }
    }
}

/**
 * The state a streaming artifact carries from frame to frame: zeros for the first frame, then
 * each step's `<name>_out` outputs as the next step's `<name>` inputs. Per kept frame:
 * `logits = state.update(backend.step(state.inputs(window.preprocess(rgb, w, h))))`, shown once
 * [ready] (after [StreamingSpec.window] steps, as the Python live demo does).
 */
class StreamingState(val spec: StreamingSpec) {
    private var values: List<FloatArray> = zeros()
    var steps = 0
        private set

    /** True once `window` frames have run: the logits then average a full window. */
    val ready: Boolean get() = steps >= spec.window

    private fun zeros(): List<FloatArray> = spec.state.map { FloatArray(it.size) }

    /** Back to zero state: the start of a new stream. */
    fun reset() {
        values = zeros()
        steps = 0
    }

    /** The current value of state tensor [name] (zeros before the first step). */
    fun value(name: String): FloatArray {
        val i = spec.state.indexOfFirst { it.name == name }
        require(i >= 0) { "no state tensor '$name'" }
        return values[i]
    }

    /** The next step's inputs by name, in the artifact's order: the frame, then the state. */
    fun inputs(frame: FloatArray): LinkedHashMap<String, FloatArray> {
        require(frame.size == spec.frame.size) { "the frame has ${frame.size} floats, metadata.json says ${spec.frame.size}" }
        val m = LinkedHashMap<String, FloatArray>()
        m[spec.frame.name] = frame
        spec.state.forEachIndexed { i, t -> m[t.name] = values[i] }
        return m
    }

    /** One step's outputs by name: keeps every `<name>_out` as the next `<name>`; returns the logits. */
    fun update(outputs: Map<String, FloatArray>): FloatArray {
        val next = spec.state.mapIndexed { i, t ->
            val name = spec.stateOutputs[i]
            val v = outputs[name] ?: throw IllegalArgumentException("the model returned no '$name'")
            require(v.size == t.size) { "the model returned ${v.size} floats for '$name', metadata.json says ${t.size}" }
            v
        }
        val logits = outputs["logits"] ?: throw IllegalArgumentException("the model returned no 'logits'")
        values = next
        steps += 1
        return logits
    }
}
