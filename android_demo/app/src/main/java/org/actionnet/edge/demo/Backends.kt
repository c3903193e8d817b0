package org.actionnet.edge.demo

import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import java.io.Closeable
import java.io.File

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

/**
 * Open the artifact an export folder's metadata.json names, with the runtime its target
 * (or file suffix) calls for, as `actionnet_edge.demo.runtime.artifact_file` does.
 */
fun openBackend(dir: File, meta: Metadata): Backend {
    val file = meta.artifact?.let { File(dir, File(it).name) }
        ?: dir.listFiles { f -> f.extension in setOf("tflite", "pte") }?.singleOrNull()
        ?: throw IllegalArgumentException("$dir: metadata.json names no artifact and no single .tflite/.pte is there")
    require(file.isFile) { "$dir: the artifact ${file.name} named in metadata.json is missing" }
    val target = meta.target ?: when (file.extension) { "tflite" -> "tflite"; "pte" -> "executorch"; else -> "" }
    val s = meta.size.toLong()
    val shape = if (meta.layout == "NHWC") longArrayOf(1, meta.segments.toLong(), s, s, 3)
                else longArrayOf(1, meta.segments.toLong(), 3, s, s)
    return when (target) {
        "tflite" -> LiteRtBackend(file)
        "executorch" -> ExecuTorchBackend(file, shape)
        else -> throw IllegalArgumentException("${file.name}: target '$target' has no runtime in this app (tflite or executorch)")
    }
}
