"""`actionnet-edge demo run|web`: the Python live demo and the browser demo."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from ..errors import ActionNetError

log = logging.getLogger(__name__)

_window_options = [
    click.option("--stride", type=click.IntRange(min=1), default=2, show_default=True,
                 help="Keep every N-th camera/video frame in the window of T frames."),
    click.option("--alpha", type=click.FloatRange(0, 1, max_open=True), default=0.5, show_default=True,
                 help="Score smoothing: weight of the previous scores (0 = none)."),
]


def _with(options):
    def deco(f):
        for o in reversed(options):
            f = o(f)
        return f
    return deco


@click.group("demo")
def command() -> None:
    """Live gesture recognition: in Python (`run`) or in the browser (`web`)."""


@command.command("run")
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path), help="A video file to run on.")
@click.option("--camera", type=click.IntRange(min=0), help="A camera index (/dev/videoN on Linux).")
@click.option("--artifact", type=click.Path(path_type=Path),
              help="An export folder (artifact + metadata.json), run in its own runtime.")
@click.option("--checkpoint", type=click.Path(path_type=Path),
              help="A checkpoint run in PyTorch (default: the bundled model).")
@_with(_window_options)
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), help="Write the annotated video: .mp4, .avi, .mkv or .mov (the container its suffix names).")
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many frames.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every prediction and the totals as JSON.")
def run(video, camera, artifact, checkpoint, stride, alpha, save, max_frames, json_out) -> None:
    """Sliding-window gesture recognition on a video or camera; prints the current gesture."""
    from ..demo.live import run_live, save_format
    from ..demo.probe import check_artifact
    from ..demo.runtime import open_artifact, open_checkpoint
    from ..fsutil import check_writable

    if (video is None) == (camera is None):
        raise ActionNetError("give exactly one of --video FILE or --camera N")
    if artifact is not None and checkpoint is not None:
        raise ActionNetError("give --artifact or --checkpoint, not both")
    if save is not None:  # the outputs are checked before the work, not lost after it
        save_format(save)
        check_writable(save, "--save")
    if json_out is not None:
        check_writable(json_out, "--json")
    if artifact is not None:
        check_artifact(artifact)  # an artifact that disagrees with its metadata.json: one line, before the loop
    model = open_artifact(artifact) if artifact is not None else open_checkpoint(checkpoint)
    click.echo(f"model: {model.description}; {len(model.meta['labels'])} gestures, "
               f"T={model.meta['segments']}, {model.meta['size']} px")
    shown = [None]

    def on_prediction(pred, fps) -> None:
        label, score = pred.top[0]
        if label != shown[0]:
            shown[0] = label
            click.echo(f"frame {pred.frame:5d}  {label:<24s} {score:.2f}  ({fps:.1f} fps, {pred.latency_ms:.1f} ms)")

    result = run_live(model, video=video, camera=camera, stride=stride, alpha=alpha, save=save,
                      max_frames=max_frames, on_prediction=on_prediction)
    final = result.predictions[-1].top[0] if result.predictions else ("-", 0.0)
    click.echo(f"{result.frames} frames, {len(result.predictions)} windows, {result.fps:.1f} fps; "
               f"last: {final[0]} {final[1]:.2f}" + (f"; saved {result.saved}" if result.saved else ""))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        tmp = json_out.with_name(f".{json_out.name}.tmp")
        tmp.write_text(json.dumps(result.to_dict(), indent=1))
        tmp.replace(json_out)


@command.command("web")
@click.option("--artifact", type=click.Path(path_type=Path),
              help="An ONNX export folder, clip or --streaming (default: the bundled model, exported to ONNX once).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (browsers allow the camera on localhost or HTTPS only).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@_with(_window_options)
def web(artifact, host, port, stride, alpha) -> None:
    """Serve the browser demo (onnxruntime-web on the camera) on localhost."""
    from ..demo.web import make_server, url_of

    if artifact is None:
        artifact = _bundled_onnx()
    server = make_server(artifact, host=host, port=port, stride=stride, alpha=alpha)
    mode = "streaming: one inference per frame, " if server.streaming else ""
    click.echo(f"serving {artifact} at {url_of(server)} ({mode}Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _bundled_onnx() -> Path:
    """The bundled checkpoint exported to ONNX in the user cache (once per checkpoint)."""
    import os

    from ..checkpoint import bundled_checkpoint, file_sha256
    from ..export import export_model

    ckpt = bundled_checkpoint()
    if not ckpt.is_file():
        raise ActionNetError(f"the bundled model {ckpt.name} is missing; give --artifact DIR")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "actionnet-edge" / "web"
    out = cache / file_sha256(ckpt)[:16]
    if not (out / "metadata.json").is_file():
        click.echo(f"exporting the bundled model to ONNX in {out} (once)")
        export_model(ckpt, "onnx", out)
    return out
