"""Constants shared across packages, each written once (this module imports nothing)."""

#: ImageNet per-channel normalisation (RGB) the backbones were pretrained with
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: numeric precisions an artifact can be exported in
PRECISIONS = ("fp32", "fp16", "int8")
#: input layouts of an exported clip: (N, T, 3, S, S) or (N, T, S, S, 3)
LAYOUTS = ("NCHW", "NHWC")
#: PT2E quantizers, one per runtime family
QUANT_BACKENDS = ("xnnpack", "litert", "coreml")
#: frames per clip T a model, a recipe or an export may take
MIN_SEGMENTS, MAX_SEGMENTS = 2, 64

#: export targets, in display order (each has a module of that name in actionnet_edge.export)
EXPORT_TARGETS = ("executorch", "tflite", "coreml", "onnx")

#: the bench's variants, each a temporal module on the same backbone: name -> temporal module. TSN,
#: TSM and ACTION by default; on request STE, CE and ME, each the learnable shift and one excitation
#: path (the paper's Table 3), to see what each path of ACTION costs
BENCH_VARIANTS = {"tsn": "none", "tsm": "shift", "action": "action", "ste": "ste", "ce": "ce", "me": "me"}
DEFAULT_BENCH_VARIANTS = ("tsn", "tsm", "action")
