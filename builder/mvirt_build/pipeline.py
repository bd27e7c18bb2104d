"""The stages of the µOS image and the graph that orders them."""

from mvirt_build.config import BuildConfig
from mvirt_build.graph import Context, Graph
from mvirt_build.stages.initramfs import InitramfsStage
from mvirt_build.stages.iso import IsoStage
from mvirt_build.stages.kernel import KernelStage
from mvirt_build.stages.rootfs import RootfsStage
from mvirt_build.stages.uki import UkiStage

STAGES = (KernelStage, RootfsStage, InitramfsStage, UkiStage, IsoStage)
FINAL = "uki"


def make_graph(config: BuildConfig) -> Graph:
    """A graph of every stage for `config`."""
    return Graph(Context(config), (stage() for stage in STAGES))
