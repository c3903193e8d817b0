"""The ARM64 environment on an x86 machine: QEMU user mode, an arm64 sysroot, aarch64 wheels, our
ExecuTorch runner (:mod:`.guest`), and a QEMU with TCG plugins (:mod:`.plugins`), cached once."""
from .cache import CACHE_ENV, CPUS
from .guest import Arm64Env, ensure, locate
from .plugins import PluginQemu, ensure_plugin_qemu, locate_plugin_qemu

__all__ = ["CACHE_ENV", "CPUS", "Arm64Env", "PluginQemu", "ensure", "ensure_plugin_qemu", "locate",
           "locate_plugin_qemu"]
