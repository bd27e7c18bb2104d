"""Boot-to-API-ready of the node next to boot-to-ready of pideisn alone, under TCG, and the
UKI's size by component.

Both machines boot the same kernel by direct kernel boot (the firmware's share is the same for
both and not what is measured) with QEMU user-mode networking, one after the other in the same
run:

- pideisn alone: the image's initramfs with an empty services file laid over it
  (`mvirt-build --extra-tree`, built into build/bench-pideisn/); time to pideisn's ready line.
- node: the image as built (mvirt-log, mvirt-vmm) with `mvirt.api=tls`, port 50051 forwarded;
  times to pideisn's ready line and to the first successful GetSystemInfo from the host over
  mutual TLS with keys/client.crt (so `mvirt-build genkey` must have run before `make uos`).

Times are wall-clock seconds from QEMU's start. Usage (after `make uos`):
  .venv/bin/python benchmarks/node_boot.py [--runs N]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from mvirt.daemon import tls
from mvirt.proto import vmm_pb2, vmm_pb2_grpc
from mvirt_build import api_boot, budget, config
from mvirt_build.qemu import QemuMachine

ROOT = Path(__file__).resolve().parents[1]
PIDEISN_ONLY = ROOT / "build" / "bench-pideisn"
TIMEOUT = 600.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_pideisn_only() -> Path:
    """The image's initramfs with no services (an empty services file laid over it)."""
    with tempfile.TemporaryDirectory() as tmp:
        overlay = Path(tmp)
        (overlay / "etc/pideisn").mkdir(parents=True)
        (overlay / "etc/pideisn/services.toml").write_text("# pideisn alone: no services\n")
        subprocess.run(
            [str(Path(sys.executable).parent / "mvirt-build"), "--output-dir", str(PIDEISN_ONLY),
             "--allow-missing-downloads", "--extra-tree", str(overlay), "initramfs"],
            cwd=ROOT, check=True,
        )  # fmt: skip
    return PIDEISN_ONLY / "initramfs.cpio.zst"


def machine(cfg: config.BuildConfig, initrd: Path, cmdline: str, port: int | None) -> list[str]:
    forwards = f",hostfwd=tcp:127.0.0.1:{port}-:{api_boot.API_PORTS[0]}" if port else ""
    qemu = QemuMachine(
        accel="tcg", kernel=cfg.output_dir / "kernel/bzImage", initrd=initrd, cmdline=cmdline
    )
    qemu.extra += ["-netdev", f"user,id=net0{forwards}", "-device", "virtio-net-pci,netdev=net0"]
    return qemu.command()


def boot_until_ready(argv: list[str]) -> tuple[subprocess.Popen[bytes], float, list[str]]:
    """Start QEMU; seconds until pideisn's ready line, and the console lines so far."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    for raw in iter(proc.stdout.readline, b""):
        lines.append(raw.decode(errors="replace").rstrip())
        if "pideisn: ready" in lines[-1]:
            return proc, time.monotonic() - started, lines
        if time.monotonic() - started > TIMEOUT:
            break
    proc.kill()
    raise SystemExit("no ready line:\n" + "\n".join(lines[-30:]))


def first_system_info(port: int, identity: tls.ClientIdentity, pin: str | None) -> None:
    """Poll until GetSystemInfo answers over mutual TLS (bounded by TIMEOUT)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            channel, _ = tls.connect_pinned(f"127.0.0.1:{port}", identity, pin, timeout=10)
            with channel:
                vmm_pb2_grpc.VmServiceStub(channel).GetSystemInfo(
                    vmm_pb2.GetSystemInfoRequest(), timeout=30
                )
            return
        except (OSError, tls.TlsError, grpc.RpcError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # polling the API until it answers


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    runs = parser.parse_args().runs
    cfg = config.load(ROOT)
    identity = tls.load_client_identity(ROOT / "keys")
    alone_initrd = build_pideisn_only()
    node_initrd = cfg.output_dir / "initramfs.cpio.zst"
    results: dict[str, list[float]] = {"pideisn alone: ready": [], "node: ready": [],
                                       "node: API answers": []}  # fmt: skip
    for _ in range(runs):
        proc, ready, _lines = boot_until_ready(machine(cfg, alone_initrd, cfg.kernel.cmdline, None))
        stop(proc)
        results["pideisn alone: ready"].append(ready)
        port = free_port()
        started = time.monotonic()
        cmdline = f"{cfg.kernel.cmdline} {api_boot.API_WORD}"
        proc, ready, lines = boot_until_ready(machine(cfg, node_initrd, cmdline, port))
        try:
            first_system_info(port, identity, api_boot.fingerprint_of(lines))
            results["node: API answers"].append(time.monotonic() - started)
        finally:
            stop(proc)
        results["node: ready"].append(ready)
    print(f"boot under TCG, direct kernel boot, {runs} run(s), seconds from QEMU's start")
    print(f"{'':<24} {'median':>8} {'min':>8} {'max':>8}")
    for name, values in results.items():
        print(f"{name:<24} {statistics.median(values):8.2f} {min(values):8.2f} {max(values):8.2f}")
    print()
    uki = cfg.output_dir / "mvirt-uos.efi"
    sizes = budget.read_sizes(cfg.output_dir / "initramfs.sizes.json")
    kernel = (cfg.output_dir / "kernel/bzImage").stat().st_size
    print("UKI size by component (zstd per component, approximate):")
    for line in budget.uki_table(kernel, node_initrd.stat().st_size, sizes, uki.stat().st_size):
        print(line)


if __name__ == "__main__":
    main()
