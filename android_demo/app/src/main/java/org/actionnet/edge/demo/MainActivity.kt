package org.actionnet.edge.demo

import android.Manifest
import android.content.pm.PackageManager
import android.os.Bundle
import android.os.SystemClock
import android.util.Log
import android.widget.TextView
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import java.io.File
import java.util.concurrent.Executors

/**
 * Camera -> GestureWindow -> LiteRT or ExecuTorch -> top-3 gestures and frames per second.
 * A streaming artifact (metadata.json has a `streaming` section) runs one step per kept frame
 * instead of one clip per window, its state carried by StreamingState.
 *
 * The model folder (metadata.json + model.tflite or model.pte, as written by
 * `actionnet-edge export`) is read from the app's external files dir, `files/model/`
 * (see README.md for the adb push command). When it holds the export's test vectors
 * (metadata.json's `vectors` section), they first run through the same backend and the
 * self-test's outcome is shown and logged (SelfTest).
 */
class MainActivity : AppCompatActivity() {
    private val executor = Executors.newSingleThreadExecutor()
    private lateinit var result: TextView
    private var window: GestureWindow? = null
    private var backend: Backend? = null
    private var stream: StreamingState? = null
    private var stepBackend: StepBackend? = null
    private var frameNo = 0
    private var lastFrame = 0L
    private var fps = 0.0
    private var selfTestStatus: String? = null  // "Self-test passed (...)" + figures, kept under the gestures

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        result = findViewById(R.id.result)
        val dir = File(getExternalFilesDir(null), "model")
        try {
            val text = File(dir, "metadata.json").readText()
            val meta = Metadata.parse(text)
            window = GestureWindow(meta, stride = intent.getIntExtra("stride", 1),
                                   alpha = intent.getDoubleExtra("alpha", 0.5))
            val spec = StreamingSpec.parse(text)
            if (spec != null) {
                stream = StreamingState(spec)
                stepBackend = openStepBackend(dir, meta, spec)
            } else {
                backend = openBackend(dir, meta)
            }
            val vectors = SelfTest.files(text)
            if (vectors != null && File(dir, vectors.first).isFile && File(dir, vectors.second).isFile) {
                result.text = "Self-test…"
                executor.execute { selfTest(dir, vectors) }  // the camera frames queue behind it on the same thread
            }
        } catch (e: Exception) {
            result.text = "Cannot load the model from $dir: ${e.message}"
            Log.e(TAG, "model", e)
            return
        }
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            requestPermissions(arrayOf(Manifest.permission.CAMERA), 1)
        }
    }

    override fun onRequestPermissionsResult(code: Int, permissions: Array<out String>, grants: IntArray) {
        super.onRequestPermissionsResult(code, permissions, grants)
        if (grants.firstOrNull() == PackageManager.PERMISSION_GRANTED) startCamera()
        else result.text = "No camera permission"
    }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            val preview = Preview.Builder().build().also {
                it.setSurfaceProvider(findViewById<PreviewView>(R.id.preview).surfaceProvider)
            }
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(executor, ::analyze)
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_FRONT_CAMERA, preview, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    /** The export's test vectors through the app's own backend (a stream: from the zero state). */
    private fun selfTest(dir: File, files: Pair<String, String>) {
        val text = try {
            val st = SelfTest.read(File(dir, files.first).readText(), File(dir, files.second).readBytes())
            val spec = stream?.spec
            val res = if (spec != null) st.runStream(spec) { stepBackend!!.step(it) } else st.runClips { backend!!.run(it) }
            res.toString()
        } catch (e: Exception) {
            Log.e(TAG, "self-test", e)
            "Self-test not run: ${e.message}"
        }
        Log.i(TAG, text)
        selfTestStatus = text
        runOnUiThread { result.text = text }
    }

    private fun analyze(image: ImageProxy) {
        val win = window ?: return image.close()
        val (rgb, w, h) = image.use { uprightRgb(it) }
        val now = SystemClock.elapsedRealtime()
        if (lastFrame > 0) fps = 0.9 * fps + 0.1 * (1000.0 / (now - lastFrame).coerceAtLeast(1))
        lastFrame = now
        val logits: FloatArray
        val ms: Long
        val st = stream
        if (st != null) {  // streaming: one step per kept frame, the state fed back
            frameNo += 1
            if ((frameNo - 1) % win.stride != 0) return
            val inputs = st.inputs(win.preprocess(rgb, w, h))
            val t0 = SystemClock.elapsedRealtime()
            logits = st.update(stepBackend!!.step(inputs))
            ms = SystemClock.elapsedRealtime() - t0
            if (!st.ready) return
        } else {
            if (!win.push(rgb, w, h)) return
            val t0 = SystemClock.elapsedRealtime()
            logits = backend!!.run(win.clip())
            ms = SystemClock.elapsedRealtime() - t0
        }
        win.update(logits)
        val lines = win.top(3).joinToString("\n") { (label, p) -> "%-24s %.2f".format(label, p) }
        val what = if (st != null) "per frame, ${stepBackend!!.name}" else backend!!.name
        val status = "$lines\n%.1f fps, model %d ms (%s)".format(fps, ms, what) + (selfTestStatus?.let { "\n$it" } ?: "")
        runOnUiThread { result.text = status }
    }

    override fun onDestroy() {
        executor.shutdown()
        backend?.close()
        stepBackend?.close()
        super.onDestroy()
    }

    companion object {
        private const val TAG = "ActionNetEdge"

        /** RGBA_8888 ImageProxy -> packed upright RGB bytes (rotation applied), width, height. */
        fun uprightRgb(image: ImageProxy): Triple<ByteArray, Int, Int> {
            val plane = image.planes[0]
            val buf = plane.buffer
            val w = image.width
            val h = image.height
            val rot = image.imageInfo.rotationDegrees
            val (ow, oh) = if (rot == 90 || rot == 270) h to w else w to h
            val out = ByteArray(ow * oh * 3)
            for (y in 0 until h) for (x in 0 until w) {
                val src = y * plane.rowStride + x * plane.pixelStride
                val (ox, oy) = when (rot) {
                    90 -> (h - 1 - y) to x
                    180 -> (w - 1 - x) to (h - 1 - y)
                    270 -> y to (w - 1 - x)
                    else -> x to y
                }
                val dst = (oy * ow + ox) * 3
                out[dst] = buf.get(src); out[dst + 1] = buf.get(src + 1); out[dst + 2] = buf.get(src + 2)
            }
            return Triple(out, ow, oh)
        }
    }
}
