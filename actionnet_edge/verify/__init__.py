"""Run an export's test vectors where the model will run: the host's runtimes, their ARM64
builds under QEMU (:mod:`.arm64`) and a phone over adb (:mod:`.device`); :mod:`.run` compares."""
