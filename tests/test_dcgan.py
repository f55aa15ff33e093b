"""The PyTorch-tutorial DCGAN, as found in the wild, converts and reproduces its own forward."""
import subprocess
import sys

import pytest
import torch
from torch import nn

import gan_models
from gan_models.archs import dcgan
from gan_models.checkpoint import CheckpointError
from gan_models.convert import convert_file
from gan_models.convert.__main__ import main as convert_main


def tutorial_generator(nz=100, ngf=8, nc=3, resolution=64, bias=False, dropout=False, mnist=False):
    """The tutorial's nn.Sequential (pytorch.org DCGAN tutorial), scaled by resolution; `dropout`
    adds the Dropout layers some forks put after ReLU (shifting the main.N indices); `mnist` is the
    common 28 px variant (4 -> 7 -> 14 -> 28, with a 3x3 kernel for 4 -> 7)."""
    layers, ch = [], nz
    if mnist:
        plan = [(ngf * 4, 4, 1, 0), (ngf * 2, 3, 2, 1), (ngf, 4, 2, 1)]
    else:
        n = {32: 3, 64: 4, 128: 5}[resolution]
        plan = [(ngf * 2 ** (n - 1 - i), 4, 1 if i == 0 else 2, 0 if i == 0 else 1) for i in range(n)]
    for out, k, s, p in plan:
        layers += [nn.ConvTranspose2d(ch, out, k, s, p, bias=bias), nn.BatchNorm2d(out), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.3))
        ch = out
    layers += [nn.ConvTranspose2d(ch, nc, 4, 2, 1, bias=bias), nn.Tanh()]
    net = nn.Module()
    net.main = nn.Sequential(*layers)
    with torch.no_grad():  # non-trivial BN statistics, so eval mode really is tested
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
    return net.eval()


CASES = [
    dict(resolution=64),
    dict(resolution=32, bias=True),
    dict(resolution=128, dropout=True),
    dict(mnist=True, nc=1, nz=62),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_tutorial_checkpoint_converts_and_matches_forward(tmp_path, case):
    torch.manual_seed(0)
    net = tutorial_generator(**case)
    torch.save(net.state_dict(), tmp_path / "netG.pth")
    meta = convert_file(tmp_path / "netG.pth", tmp_path / "g.safetensors")
    G = gan_models.load_generator(tmp_path / "g.safetensors")
    nz = case.get("nz", 100)
    assert (G.z_dim, G.c_dim) == (nz, 0) and meta["source"]["converter"] == "dcgan-tutorial"
    z = torch.randn(5, nz)
    want = net.main(z[:, :, None, None])
    assert G.img_resolution == want.shape[-1]
    torch.testing.assert_close(G(z), want, atol=1e-5, rtol=0)


def test_conditional_tutorial_checkpoint_in_a_tar_dict(tmp_path):
    torch.manual_seed(1)
    net = tutorial_generator(nz=100 + 10, resolution=32, nc=1)
    torch.save({"epoch": 7, "netG": net.state_dict(), "netD": {"x.weight": torch.zeros(1)},
                "optimizerG": torch.optim.Adam(net.parameters()).state_dict()}, tmp_path / "ckpt.tar")
    rc = convert_main([str(tmp_path / "ckpt.tar"), str(tmp_path / "g.safetensors"), "--num-classes", "10",
                       "--class-names", ",".join(f"c{i}" for i in range(10))])
    assert rc == 0
    G = gan_models.load_generator(tmp_path / "g.safetensors")
    assert (G.z_dim, G.c_dim) == (100, 10) and G.meta["class_names"][3] == "c3"
    z, labels = torch.randn(4, 100), torch.tensor([0, 3, 9, 3])
    c = nn.functional.one_hot(labels, 10).float()
    want = net.main(torch.cat([z, c], 1)[:, :, None, None])
    torch.testing.assert_close(G(z, c), want, atol=1e-5, rtol=0)


def test_inconsistent_split_hint_is_refused(tmp_path):
    torch.save(tutorial_generator(nz=20, resolution=32).state_dict(), tmp_path / "netG.pth")
    with pytest.raises(CheckpointError, match="input channels"):
        convert_file(tmp_path / "netG.pth", tmp_path / "g.safetensors", z_dim=15, num_classes=10)
    assert not (tmp_path / "g.safetensors").exists()


def test_convert_refuses_unknown_layouts_and_wrong_suffix(tmp_path, capsys):
    torch.save({"encoder.weight": torch.zeros(3, 3)}, tmp_path / "x.pth")
    assert convert_main([str(tmp_path / "x.pth"), str(tmp_path / "x.safetensors")]) == 2
    assert "not a checkpoint layout any converter recognises" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="must end in .safetensors"):
        convert_file(tmp_path / "x.pth", tmp_path / "x.bin")


def test_native_layouts_cover_all_resolutions():
    for res in (28, 32, 64, 128):
        G = dcgan.Generator(dcgan.make_layout(16, 4, res, 1, ngf=4), c_dim=4).eval()
        out = G(torch.randn(2, 16), torch.eye(4)[:2])
        assert out.shape == (2, 1, res, res)
    with pytest.raises(ValueError, match="resolution"):
        dcgan.make_layout(16, 0, 48, 3)


def test_wrong_inputs_are_clear_errors():
    G = dcgan.Generator(dcgan.make_layout(16, 4, 32, 1, ngf=4), c_dim=4).eval()
    with pytest.raises(ValueError, match="class-conditional"):
        G(torch.randn(2, 16))
    with pytest.raises(ValueError, match=r"z must be \[N, 16\]"):
        G(torch.randn(2, 15), torch.eye(4)[:2])


def test_convert_cli_help_runs_as_a_module():
    r = subprocess.run([sys.executable, "-m", "gan_models.convert", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    assert "no code stored in it is ever executed" in " ".join(r.stdout.split())
