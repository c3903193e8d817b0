import AVFoundation
import QuartzCore
import Foundation
import GestureCore
import SwiftUI

/// Camera -> GestureWindow -> CoreML or ExecuTorch -> top-3 gestures and frames per second.
/// A streaming artifact (metadata.json has a `streaming` section) runs one step per kept frame
/// instead of one clip per window, its state carried by StreamingState.
///
/// The model folder (metadata.json + model.mlpackage or model.pte, as written by
/// `actionnet-edge export`) is read from the app's Documents/model (copy it with Finder or
/// `xcrun devicectl`, see README.md). When it holds the export's test vectors (metadata.json's
/// `vectors` section), they first run through the same backend and the self-test's outcome is
/// shown and logged (SelfTest).
final class CameraRecognizer: NSObject, ObservableObject, AVCaptureVideoDataOutputSampleBufferDelegate {
    let session = AVCaptureSession()
    @Published var status = "Filling the window…"
    private let queue = DispatchQueue(label: "camera")
    private var window: GestureWindow?
    private var backend: Backend?
    private var stream: StreamingState?
    private var stepBackend: StepBackend?
    private var frameNo = 0
    private var lastFrame: CFTimeInterval = 0
    private var fps = 0.0
    private var selfTestStatus: String?  // "Self-test passed (...)" + figures, kept under the gestures

    func start() {
        let dir = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0].appendingPathComponent("model")
        do {
            let data = try Data(contentsOf: dir.appendingPathComponent("metadata.json"))
            let meta = try Metadata.parse(data)
            window = try GestureWindow(meta: meta, stride: 1, alpha: 0.5)
            if let spec = try StreamingSpec.parse(data) {
                stream = StreamingState(spec: spec)
                stepBackend = try openStepBackend(dir: dir, meta: meta, spec: spec)
            } else {
                backend = try openBackend(dir: dir, meta: meta)
            }
            if let files = try SelfTest.files(metadata: data),
               FileManager.default.fileExists(atPath: dir.appendingPathComponent(files.json).path),
               FileManager.default.fileExists(atPath: dir.appendingPathComponent(files.bin).path) {
                status = "Self-test…"
                queue.async { self.selfTest(dir: dir, files: files) }  // the camera frames come after it on the same queue
            }
        } catch {
            status = "Cannot load the model from \(dir.path): \(error)"
            return
        }
        AVCaptureDevice.requestAccess(for: .video) { granted in
            guard granted else { DispatchQueue.main.async { self.status = "No camera permission" }; return }
            self.queue.async { self.configure() }
        }
    }

    func stop() { queue.async { self.session.stopRunning() } }

    /// The export's test vectors through the app's own backend (a stream: from the zero state).
    private func selfTest(dir: URL, files: (json: String, bin: String)) {
        let text: String
        do {
            let st = try SelfTest.read(json: Data(contentsOf: dir.appendingPathComponent(files.json)),
                                       bin: Data(contentsOf: dir.appendingPathComponent(files.bin)))
            let result: SelfTestResult
            if let spec = stream?.spec, let steps = stepBackend {
                result = try st.runStream(spec: spec) { try steps.step($0) }
            } else if let backend = backend {
                result = try st.runClips { try backend.run($0) }
            } else {
                throw GestureError("no backend")
            }
            text = result.description
        } catch {
            text = "Self-test not run: \(error)"
        }
        NSLog("%@", text)
        selfTestStatus = text
        DispatchQueue.main.async { self.status = text }
    }

    private func configure() {
        session.beginConfiguration()
        session.sessionPreset = .vga640x480
        guard let device = AVCaptureDevice.default(.builtInWideAngleCamera, for: .video, position: .front),
              let input = try? AVCaptureDeviceInput(device: device), session.canAddInput(input) else {
            DispatchQueue.main.async { self.status = "No camera" }
            return
        }
        session.addInput(input)
        let output = AVCaptureVideoDataOutput()
        output.videoSettings = [kCVPixelBufferPixelFormatTypeKey as String: kCVPixelFormatType_32BGRA]
        output.alwaysDiscardsLateVideoFrames = true
        output.setSampleBufferDelegate(self, queue: queue)
        session.addOutput(output)
        if let conn = output.connection(with: .video) {
            if #available(iOS 17.0, *) {
                if conn.isVideoRotationAngleSupported(90) { conn.videoRotationAngle = 90 }  // upright in portrait
            } else if conn.isVideoOrientationSupported {
                conn.videoOrientation = .portrait
            }
        }
        session.commitConfiguration()
        session.startRunning()
    }

    func captureOutput(_ output: AVCaptureOutput, didOutput sampleBuffer: CMSampleBuffer, from connection: AVCaptureConnection) {
        guard let win = window, let pixels = CMSampleBufferGetImageBuffer(sampleBuffer) else { return }
        let (rgb, w, h) = Self.rgb(pixels)
        let now = CACurrentMediaTime()
        if lastFrame > 0 { fps = 0.9 * fps + 0.1 / max(now - lastFrame, 1e-3) }
        lastFrame = now
        do {
            let logits: [Float], ms: Double, what: String
            if let st = stream, let steps = stepBackend {  // streaming: one step per kept frame, the state fed back
                frameNo += 1
                guard (frameNo - 1) % win.stride == 0 else { return }
                let inputs = try st.inputs(frame: try win.preprocess(rgb, width: w, height: h))
                let t0 = CACurrentMediaTime()
                logits = try st.update(steps.step(inputs))
                ms = (CACurrentMediaTime() - t0) * 1000
                guard st.ready else { return }
                what = "per frame, \(steps.name)"
            } else if let backend = backend {
                guard try win.push(rgb, width: w, height: h) else { return }
                let t0 = CACurrentMediaTime()
                logits = try backend.run(try win.clip())
                ms = (CACurrentMediaTime() - t0) * 1000
                what = backend.name
            } else {
                return
            }
            try win.update(logits)
            let lines = win.top(3).map { String(format: "%@ %.2f", $0.label.padding(toLength: 24, withPad: " ", startingAt: 0), $0.score) }
            let text = (lines + [String(format: "%.1f fps, model %.0f ms (%@)", fps, ms, what)] + [selfTestStatus].compactMap { $0 })
                .joined(separator: "\n")
            DispatchQueue.main.async { self.status = text }
        } catch {
            DispatchQueue.main.async { self.status = "\(error)" }
        }
    }

    /// BGRA pixel buffer -> packed RGB bytes, width, height.
    static func rgb(_ buffer: CVPixelBuffer) -> ([UInt8], Int, Int) {
        CVPixelBufferLockBaseAddress(buffer, .readOnly)
        defer { CVPixelBufferUnlockBaseAddress(buffer, .readOnly) }
        let w = CVPixelBufferGetWidth(buffer), h = CVPixelBufferGetHeight(buffer)
        let row = CVPixelBufferGetBytesPerRow(buffer)
        let base = CVPixelBufferGetBaseAddress(buffer)!.assumingMemoryBound(to: UInt8.self)
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                let s = y * row + x * 4, d = (y * w + x) * 3
                out[d] = base[s + 2]; out[d + 1] = base[s + 1]; out[d + 2] = base[s]
            }
        }
        return (out, w, h)
    }
}

/// The camera preview layer in SwiftUI.
struct CameraPreview: UIViewRepresentable {
    let session: AVCaptureSession

    final class PreviewView: UIView {
        override class var layerClass: AnyClass { AVCaptureVideoPreviewLayer.self }
        var previewLayer: AVCaptureVideoPreviewLayer { layer as! AVCaptureVideoPreviewLayer }
    }

    func makeUIView(context: Context) -> PreviewView {
        let view = PreviewView()
        view.previewLayer.session = session
        view.previewLayer.videoGravity = .resizeAspectFill
        return view
    }

    func updateUIView(_ uiView: PreviewView, context: Context) {}
}
