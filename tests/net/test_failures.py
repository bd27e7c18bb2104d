"""A change the kernel refuses half-way leaves nothing behind: not in the database, not in
the kernel (the netlink part already applied is rolled back)."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest

from mvirt.proto import net_pb2
from tests.net.kernel_state import snapshot

FAKE_NFT = Path(__file__).with_name("fake_nft.py")


@pytest.fixture
def failing_nft(tmp_path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nft").symlink_to(FAKE_NFT)
    flag = tmp_path / "nft-fails"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("MVIRT_TEST_NFT_FAIL", str(flag))
    return flag


def test_refused_create_nic_leaves_no_tap_route_or_row(start_net, failing_nft) -> None:
    net = start_net()
    net.stub.CreateNetwork(net_pb2.CreateNetworkRequest(name="prod", ipv4_subnet="10.200.0.0/24"))
    kept = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod"))
    before = snapshot(net.netns)
    failing_nft.touch()
    with pytest.raises(grpc.RpcError) as info:
        net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod", name="doomed"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "nothing was changed" in info.value.details()
    failing_nft.unlink()
    assert [n.id for n in net.stub.ListNics(net_pb2.ListNicsRequest()).nics] == [kept.id]
    assert snapshot(net.netns) == before
    # The next change works and gets the address the refused one would have had.
    again = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod", name="doomed"))
    assert again.ipv4_address == "10.200.0.2"


def test_refused_delete_network_keeps_everything(start_net, failing_nft) -> None:
    net = start_net()
    made = net.stub.CreateNetwork(
        net_pb2.CreateNetworkRequest(name="prod", ipv4_subnet="10.200.0.0/24")
    )
    nic = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod"))
    before = snapshot(net.netns)
    failing_nft.touch()
    with pytest.raises(grpc.RpcError) as info:
        net.stub.DeleteNetwork(net_pb2.DeleteNetworkRequest(id=made.id, force=True))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    failing_nft.unlink()
    assert net.stub.GetNic(net_pb2.GetNicRequest(id=nic.id)).state == net_pb2.NIC_STATE_CREATED
    assert snapshot(net.netns) == before
