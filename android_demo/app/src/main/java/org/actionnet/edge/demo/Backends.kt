package org.actionnet.edge.demo

import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import org.tensorflow.lite.Interpreter
import java.io.Closeable
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** A model runtime: one clip (flattened in the artifact's layout) -> K logits. */
interface Backend : Closeable {
    val name: String
    fun run(clip: FloatArray): FloatArray
}

/** LiteRT CompiledModel on the CPU (XNNPACK), for `.tflite` artifacts. */
class LiteRtBackend(file: File) : Backend {
    override val name = "LiteRT ${file.name}"
    private val model = CompiledModel.create(file.absolutePath, CompiledModel.Options(Accelerator.CPU))
    private val inputs = model.createInputBuffers()
    private val outputs = model.createOutputBuffers()

    override fun run(clip: FloatArray): FloatArray {
        inputs[0].writeFloat(clip)
        model.run(inputs, outputs)
        return outputs[0].readFloat()
    }

    override fun close() {
        inputs.forEach { it.close() }
        outputs.forEach { it.close() }
        model.close()
    }
}

/** ExecuTorch's Android runtime (XNNPACK delegate inside the .pte), for `.pte` artifacts. */
class ExecuTorchBackend(file: File, private val shape: LongArray) : Backend {
    override val name = "ExecuTorch ${file.name}"
    private val module = Module.load(file.absolutePath)

    override fun run(clip: FloatArray): FloatArray {
        val out = module.forward(EValue.from(Tensor.fromBlob(clip, shape)))
        return out[0].toTensor().dataAsFloatArray
    }

    override fun close() = module.destroy()
}

/** A streaming runtime: one step, the inputs by name (frame + state) -> the outputs by name. */
interface StepBackend : Closeable {
    val name: String
    fun step(inputs: Map<String, FloatArray>): Map<String, FloatArray>
}

/** LiteRT's Interpreter on a `.tflite` streaming artifact: its one signature, inputs and outputs by name. */
class LiteRtStepBackend(file: File, private val spec: StreamingSpec) : StepBackend {
    override val name = "LiteRT ${file.name}, streaming"
    private val interpreter = Interpreter(file, Interpreter.Options().setNumThreads(2))
    private val key: String = interpreter.signatureKeys.singleOrNull()
        ?: throw IllegalArgumentException("${file.name}: expected one signature, found ${interpreter.signatureKeys.size}")
    private fun buffer(t: TensorSpec): ByteBuffer = ByteBuffer.allocateDirect(4 * t.size).order(ByteOrder.nativeOrder())
    private val inputs = spec.inputs.associate { it.name to buffer(it) }
    private val outputs = spec.outputs.associate { it.name to buffer(it) }

    init {
        require(interpreter.getSignatureInputs(key).toSet() == inputs.keys &&
                interpreter.getSignatureOutputs(key).toSet() == outputs.keys) {
            "${file.name}: its signature's inputs/outputs differ from the 'streaming' section of metadata.json"
        }
    }

    override fun step(inputs: Map<String, FloatArray>): Map<String, FloatArray> {
        for ((name, buf) in this.inputs) {
            buf.rewind()
            buf.asFloatBuffer().put(inputs.getValue(name))
        }
        outputs.values.forEach { it.rewind() }
        interpreter.runSignature(this.inputs, outputs, key)
        return outputs.mapValues { (_, buf) ->
            buf.rewind()
            FloatArray(buf.capacity() / 4).also { buf.asFloatBuffer().get(it) }
        }
    }

    override fun close() = interpreter.close()
}

/** ExecuTorch on a `.pte` streaming artifact: inputs and outputs are positional, in metadata.json's order. */
class ExecuTorchStepBackend(file: File, private val spec: StreamingSpec) : StepBackend {
    override val name = "ExecuTorch ${file.name}, streaming"
    private val module = Module.load(file.absolutePath)

    override fun step(inputs: Map<String, FloatArray>): Map<String, FloatArray> {
        val args = spec.inputs.map { t ->
            EValue.from(Tensor.fromBlob(inputs.getValue(t.name), LongArray(t.shape.size) { t.shape[it].toLong() }))
        }
        val out = module.forward(*args.toTypedArray())
        require(out.size == spec.outputs.size) { "the model returned ${out.size} outputs, metadata.json lists ${spec.outputs.size}" }
        return spec.outputs.indices.associate { spec.outputs[it].name to out[it].toTensor().dataAsFloatArray }
    }

    override fun close() = module.destroy()
}

/** The artifact file metadata.json names (or the folder's single .tflite/.pte) and its target. */
fun artifactFile(dir: File, meta: Metadata): Pair<File, String> {
    val file = meta.artifact?.let { File(dir, File(it).name) }
        ?: dir.listFiles { f -> f.extension in setOf("tflite", "pte") }?.singleOrNull()
        ?: throw IllegalArgumentException("$dir: metadata.json names no artifact and no single .tflite/.pte is there")
    require(file.isFile) { "$dir: the artifact ${file.name} named in metadata.json is missing" }
    val target = meta.target ?: when (file.extension) { "tflite" -> "tflite"; "pte" -> "executorch"; else -> "" }
    return Pair(file, target)
}

/**
 * Open the artifact an export folder's metadata.json names, with the runtime its target
 * (or file suffix) calls for, as `actionnet_edge.demo.runtime.artifact_file` does.
 */
fun openBackend(dir: File, meta: Metadata): Backend {
    val (file, target) = artifactFile(dir, meta)
    val s = meta.size.toLong()
    val shape = if (meta.layout == "NHWC") longArrayOf(1, meta.segments.toLong(), s, s, 3)
                else longArrayOf(1, meta.segments.toLong(), 3, s, s)
    return when (target) {
        "tflite" -> LiteRtBackend(file)
        "executorch" -> ExecuTorchBackend(file, shape)
        else -> throw IllegalArgumentException("${file.name}: target '$target' has no runtime in this app (tflite or executorch)")
    }
}

/** Open a streaming artifact (metadata.json has a `streaming` section): one step per frame. */
fun openStepBackend(dir: File, meta: Metadata, spec: StreamingSpec): StepBackend {
    val (file, target) = artifactFile(dir, meta)
    return when (target) {
        "tflite" -> LiteRtStepBackend(file, spec)
        "executorch" -> ExecuTorchStepBackend(file, spec)
        else -> throw IllegalArgumentException("${file.name}: target '$target' has no streaming runtime in this app (tflite or executorch)")
    }
}
