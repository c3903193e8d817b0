"""Run an export's test vectors where the model will run: the host's runtimes, their ARM64
builds under QEMU (:mod:`actionnet_edge.arm64`) and a phone over adb (:mod:`.device`); :mod:`.run` compares."""
