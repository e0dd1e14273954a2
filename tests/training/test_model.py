import pytest
import torch

from training.model import (FEATURE_DIM, STAGE_FEATURE_DIM, NormalizedLinear, create_model, key_map, layer_groups,
                            weights_path)


@pytest.fixture(scope="module")
def imagenet_model():
    return create_model(1000, pretrained=True).eval()


def test_mapped_imagenet_logits_equal_the_reference_implementation(imagenet_model):
    reference_impl = pytest.importorskip("efficientnet_lite_pytorch")
    reference = reference_impl.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(weights_path())
    ).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = imagenet_model(x), reference(x)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_key_map_covers_the_checkpoint_one_to_one():
    checkpoint = torch.load(weights_path(), map_location="cpu", weights_only=True)
    mapping = key_map()
    assert set(mapping) == set(checkpoint)
    assert len(set(mapping.values())) == len(mapping)


def test_new_head_keeps_pretrained_backbone_and_drops_imagenet_classifier(imagenet_model):
    model = create_model(3, pretrained=True)
    assert model.get_classifier().out_features == 3
    torch.testing.assert_close(model.conv_head.weight, imagenet_model.conv_head.weight)
    torch.testing.assert_close(model.blocks[3][1].bn2.running_var, imagenet_model.blocks[3][1].bn2.running_var)


def test_unpretrained_model_differs_from_imagenet(imagenet_model):
    model = create_model(3, pretrained=False)
    assert not torch.allclose(model.conv_head.weight, imagenet_model.conv_head.weight)


def test_layer_groups_run_stem_to_classifier_and_cover_every_parameter():
    model = create_model(2, pretrained=False)
    groups = layer_groups(model)
    assert [name for name, _ in groups] == ["stem", *(f"block{i}" for i in range(7)), "head", "classifier"]
    grouped = {id(p) for _, modules in groups for m in modules for p in m.parameters()}
    assert grouped == {id(p) for p in model.parameters()}


def test_features_are_what_the_classifier_sees(imagenet_model):
    model = create_model(2, pretrained=True).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        feats = model.features(x)
        torch.testing.assert_close(model.get_classifier()(feats), model(x))
        # the usual pooled features first (timm's pre-logits), then the last stage's pooled output
        torch.testing.assert_close(feats[:, :FEATURE_DIM], imagenet_model.forward_head(
            imagenet_model.forward_features(x), pre_logits=True))
        stage = imagenet_model.blocks(imagenet_model.bn1(imagenet_model.conv_stem(x))).mean((2, 3))
        torch.testing.assert_close(feats[:, FEATURE_DIM:], stage)
    assert feats.shape == (2, FEATURE_DIM + STAGE_FEATURE_DIM)
    probe = create_model(2, pretrained=False, stage_features=False).eval()
    assert probe.features(x).shape == (2, FEATURE_DIM) and probe.get_classifier().in_features == FEATURE_DIM


def test_new_head_sees_features_at_a_fixed_length_and_imagenet_keeps_its_own(imagenet_model):
    head = create_model(3, pretrained=False, stage_features=False).get_classifier()
    assert isinstance(head, NormalizedLinear) and type(imagenet_model.get_classifier()) is torch.nn.Linear
    x = torch.rand(4, head.in_features)
    torch.testing.assert_close(head(x), head(7.5 * x))
    torch.testing.assert_close(head(x), torch.nn.functional.linear(x / x.norm(dim=1, keepdim=True) * head.scale,
                                                                   head.weight, head.bias))


def test_each_feature_level_is_normalised_on_its_own():
    head = create_model(3, pretrained=False).get_classifier()
    assert head.chunks == (FEATURE_DIM, STAGE_FEATURE_DIM)
    x = torch.rand(4, head.in_features)
    louder_stage = torch.cat([x[:, :FEATURE_DIM], 50 * x[:, FEATURE_DIM:]], dim=1)
    torch.testing.assert_close(head(x), head(louder_stage))
    unit = torch.cat([x[:, :FEATURE_DIM] / x[:, :FEATURE_DIM].norm(dim=1, keepdim=True),
                      x[:, FEATURE_DIM:] / x[:, FEATURE_DIM:].norm(dim=1, keepdim=True)], dim=1)
    scaled = unit * head.scale / 2 ** 0.5  # the two levels together have length `scale`
    torch.testing.assert_close(scaled.norm(dim=1), torch.full((4,), head.scale))
    torch.testing.assert_close(head(x), torch.nn.functional.linear(scaled, head.weight, head.bias))
    with pytest.raises(ValueError, match="add up"):
        NormalizedLinear(10, 2, chunks=(4, 4))


@pytest.mark.parametrize("backbone, depths, stage_dim", [("lite1", (1, 3, 3, 4, 4, 5, 1), 320),
                                                          ("lite2", (1, 3, 3, 4, 4, 5, 1), 352)])
def test_larger_backbones_load_their_own_wheels_weights_through_the_same_key_map(backbone, depths, stage_dim):
    checkpoint = torch.load(weights_path(backbone), map_location="cpu", weights_only=True)
    assert set(key_map(depths)) == set(checkpoint)
    imagenet = create_model(1000, backbone=backbone).eval()  # strict loading: a missing tensor raises
    torch.testing.assert_close(imagenet.conv_head.weight, checkpoint["_conv_head.weight"])
    model = create_model(3, backbone=backbone).eval()
    torch.testing.assert_close(model.blocks[2][2].conv_dw.weight, imagenet.blocks[2][2].conv_dw.weight)
    assert model.get_classifier().chunks == (FEATURE_DIM, stage_dim)
    assert model.features(torch.zeros(1, 3, 64, 64)).shape == (1, FEATURE_DIM + stage_dim)


def test_an_unknown_backbone_is_refused_before_anything_is_built():
    from training.config import TrainConfig
    from training.recipe import check_config

    with pytest.raises(ValueError, match="lite0, lite1, lite2"):
        check_config(TrainConfig(backbone="lite9"))
