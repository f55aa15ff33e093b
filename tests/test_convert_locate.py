"""Training checkpoints keep their generator wherever their script put it: the converter finds it by
structure, beside a discriminator (which a DCGAN's key layout cannot tell from a generator) and
optimizer states, and names every candidate where it cannot choose."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import gan_models
from gan_models.archs import dcgan
from gan_models.checkpoint import CheckpointError
from gan_models.convert import convert_file
from gan_models.convert.__main__ import main as convert_main


def tutorial_G(seed):
    torch.manual_seed(seed)
    return dcgan.Generator(dcgan.make_layout(16, 0, 32, 3, ngf=4)).state_dict()


def tutorial_D():
    # the tutorial's netD: main.N Conv2d / BatchNorm2d, keys of the same form as netG's
    torch.manual_seed(9)
    D = nn.Sequential(nn.Conv2d(3, 4, 4, 2, 1, bias=False), nn.LeakyReLU(0.2), nn.Conv2d(4, 8, 4, 2, 1, bias=False),
                      nn.BatchNorm2d(8), nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 8, 1, 0, bias=False), nn.Sigmoid())
    return {f"main.{k}": v for k, v in D.state_dict().items()}


def adam_state(sd):
    opt = torch.optim.Adam([nn.Parameter(v.clone().float()) for v in sd.values() if v.is_floating_point()])
    for group in opt.param_groups:
        for p in group["params"]:
            p.grad = torch.ones_like(p)
    opt.step()
    return opt.state_dict()


G, G_EMA, D = tutorial_G(1), tutorial_G(2), tutorial_D()
LAYOUTS = {
    # the PyTorch DCGAN tutorial forks' .tar
    "netG_state_dict": {"epoch": 5, "netG_state_dict": G, "netD_state_dict": D,
                        "optimizerG_state_dict": adam_state(G), "optimizerD_state_dict": adam_state(D)},
    "generator_state_dict": {"generator_state_dict": G, "discriminator_state_dict": D, "g_optimizer": adam_state(G)},
    "models/gen": {"models": {"gen": G, "disc": D}, "optimizers": {"gen": adam_state(G)}, "step": 1000},
    "G": {"G": G, "D": D, "optim_G": adam_state(G), "optim_D": adam_state(D)},
    "ema_generator": {"ema_generator": G_EMA, "generator": G, "d": D, "g_optim": adam_state(G)},  # EMA wins over G
    "state_dict/generator.": {"epoch": 3, "state_dict": {**{f"generator.{k}": v for k, v in G.items()},
                                                         **{f"discriminator.{k}": v for k, v in D.items()}}},
    "nets/0": {"nets": [G, D], "names": ["netG", "netD"], "opt": [adam_state(G)]},
}


@pytest.mark.parametrize("where", list(LAYOUTS))
def test_the_generator_is_found_wherever_it_is_kept(where, tmp_path):
    torch.save(LAYOUTS[where], tmp_path / "ckpt.tar")
    if where == "nets/0":  # two nameless networks, both read as DCGAN: the user is asked which
        with pytest.raises(CheckpointError, match=r"2 generators in this file: nets/0 .*nets/1 .*--key"):
            convert_file(tmp_path / "ckpt.tar", tmp_path / "out.safetensors")
        meta = convert_file(tmp_path / "ckpt.tar", tmp_path / "out.safetensors", key="nets/0")
    else:
        meta = convert_file(tmp_path / "ckpt.tar", tmp_path / "out.safetensors")
    assert meta["source"]["key"] == where
    want = G_EMA if where == "ema_generator" else G
    torch.save(want, tmp_path / "netG.pth")
    convert_file(tmp_path / "netG.pth", tmp_path / "plain.safetensors")
    A = gan_models.load_generator(tmp_path / "out.safetensors")
    B = gan_models.load_generator(tmp_path / "plain.safetensors")
    z = torch.randn(2, 16)
    assert torch.equal(A(z), B(z))


def test_an_ambiguous_file_lists_its_candidates_and_takes_a_key_on_the_command_line(tmp_path, capsys):
    torch.save({"G1": G, "G2": G_EMA, "D": D}, tmp_path / "two.pt")
    assert convert_main([str(tmp_path / "two.pt"), str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "2 generators in this file: G1 (dcgan-tutorial, 19 tensors); G2" in err and "Traceback" not in err
    assert not (tmp_path / "out.safetensors").exists()
    assert convert_main([str(tmp_path / "two.pt"), str(tmp_path / "out.safetensors"), "--key", "G2"]) == 0
    assert gan_models.checkpoint.read_meta(tmp_path / "out.safetensors")["source"]["key"] == "G2"
    assert convert_main([str(tmp_path / "two.pt"), str(tmp_path / "o2.safetensors"), "--key", "G3"]) == 2
    assert "no 'G3' at the top level (there: 'G1', 'G2', 'D')" in capsys.readouterr().err


def test_from_dcgan_tutorial_finds_the_generator_in_a_training_tar(tmp_path):
    torch.save(LAYOUTS["netG_state_dict"], tmp_path / "ckpt.tar")
    assert convert_main([str(tmp_path / "ckpt.tar"), str(tmp_path / "o.safetensors"), "--from", "dcgan-tutorial"]) == 0


def test_a_file_without_a_generator_says_what_it_holds_and_what_came_closest(tmp_path, capsys):
    torch.save({"epoch": 3, "weights": {"fc.weight": torch.zeros(4, 4), "fc.bias": torch.zeros(4)}},
               tmp_path / "what.pt")
    assert convert_main([str(tmp_path / "what.pt"), str(tmp_path / "o.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "no generator found" in err and "'epoch' (int)" in err and "'weights' (dict, 2 tensors)" in err
    assert "the largest state dict, at weights (2 tensors), matches no architecture" in err
    # a discriminator alone is not taken for a generator
    torch.save({"netD_state_dict": D, "optimizerD_state_dict": adam_state(D)}, tmp_path / "d_only.tar")
    assert convert_main([str(tmp_path / "d_only.tar"), str(tmp_path / "o.safetensors")]) == 2
    assert "no generator found" in capsys.readouterr().err


def test_the_walk_is_bounded(tmp_path):
    deep = G
    for i in range(50):
        deep = {f"level{i}": deep}
    torch.save(deep, tmp_path / "deep.pt")
    with pytest.raises(CheckpointError, match="no generator found"):
        convert_file(tmp_path / "deep.pt", tmp_path / "o.safetensors")
    wide = {"parts": [{"x": torch.zeros(1)} for _ in range(60_000)]}
    torch.save(wide, tmp_path / "wide.pt")
    with pytest.raises(CheckpointError, match="more than 100,000 parts to look at; name it with --key"):
        convert_file(tmp_path / "wide.pt", tmp_path / "o.safetensors")
