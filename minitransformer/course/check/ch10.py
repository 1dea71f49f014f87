"""Checks for chapter 10's exercises: the LoraConfig for a course adapter, predicting print_trainable_parameters(),
and HF's tensor names. Checks 10.1 and 10.2 build the model with Hugging Face PEFT to compare."""

import os
import tempfile

import torch

from ...model import Classifier, MiniTransformer, ModelConfig
from ...peft.hf import hf_tensor_name as hf_tensor_name_reference
from .core import Part, call_learner, checker, pick, register


def _hf():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # HF wraps the course's own model: nothing to download
    import peft

    return peft


def _small_classifier(seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(MiniTransformer(ModelConfig(d_model=32, n_layer=2, n_head=2)), num_classes=2)


def _course_config(targets, r, alpha, rslora, dropout=0.0) -> dict:
    """What save_adapter writes for a course LoRA adapter on a small Classifier (read back as a dict)."""
    from ... import peft as course

    model = _small_classifier()
    course.add_lora(model, "task", targets=targets, r=r, alpha=alpha, rslora=rslora, dropout=dropout)
    with tempfile.TemporaryDirectory() as folder:
        course.save_adapter(model, folder, "task")
        return course.read_adapter_config(folder)


def hf_lora_config_reference(course_config: dict) -> dict:
    """LoraConfig keyword arguments that rebuild the adapter a course adapter_config.json describes."""
    settings = course_config["layers"][0]["settings"]
    prefix = "base." if course_config["head"] else ""
    kwargs = {"r": settings["r"], "lora_alpha": settings["alpha"], "lora_dropout": settings["dropout"],
              "use_rslora": settings["rslora"],
              "target_modules": [prefix + layer["layer"] for layer in course_config["layers"]]}
    if course_config["head"]:
        kwargs["modules_to_save"] = ["head"]
    return kwargs


@register("10.1", "the LoraConfig for a course adapter", 4, hf_lora_config_reference,
          "minitransformer.course.check.ch10.hf_lora_config_reference")
def _check_lora_config(fn):
    targets, r, alpha, rslora = pick(0, (("q_proj", "v_proj"), 4, 16, False), (("k_proj", "fc_in"), 2, 4, False),
                                     (("v_proj", "out_proj"), 8, 8, True), ("all-linear", 4, 2, True))
    config = _course_config(targets, r, alpha, rslora)
    kwargs = call_learner(fn, config)
    if not isinstance(kwargs, dict):
        yield Part("returns a dict of LoraConfig keyword arguments", False, f"got {type(kwargs).__name__}")
        return
    hf = _hf()
    try:
        model = hf.get_peft_model(_small_classifier(), hf.LoraConfig(**kwargs))
    except Exception as error:  # a wrong keyword or a target that matches nothing
        yield Part("LoraConfig(**your_dict) builds on the Classifier", False, f"HF PEFT says: {type(error).__name__}: "
                   f"{str(error)[:300]}")
        return
    yield Part("LoraConfig(**your_dict) builds on the Classifier", True)
    wanted = {"base." + layer["layer"] for layer in config["layers"]}
    inner = model.get_base_model()
    got = {n for n, m in inner.named_modules() if hasattr(m, "lora_A") and hasattr(m, "scaling")}
    yield Part("LoRA on exactly the course adapter's layers", got == wanted,
               f"HF wrapped {sorted(got - wanted)[:4] or 'no extra layer'} too much and missed "
               f"{sorted(wanted - got)[:4] or 'nothing'}; HF matches a name in target_modules as a whole module "
               "name or its last parts (suffix after a dot); \"all-linear\" on a custom model includes the heads")
    expected = alpha / (r ** 0.5 if rslora else r)
    scalings = {m.scaling.get("default") for n, m in inner.named_modules() if n in got}
    ranks = {m.r.get("default") for n, m in inner.named_modules() if n in got}
    yield Part("the same rank and scaling (alpha / r, or alpha / sqrt(r) with use_rslora)",
               ranks == {r} and scalings == {expected},
               f"HF's layers have r {sorted(ranks)} and scaling {sorted(scalings)}; the course adapter has r = {r} and "
               f"scaling {expected:g} (the course calls it alpha, HF lora_alpha; rslora is use_rslora)")
    head = {n for n, p in inner.named_parameters() if p.requires_grad and n.startswith("head.")}
    yield Part("the task head trains and is saved (modules_to_save)", bool(head),
               "HF freezes every module it does not wrap: without modules_to_save=[\"head\"] the new head stays "
               "random, and save_pretrained does not save it")


@register("10.3", "a course tensor name in an HF adapter file", 4, hf_tensor_name_reference,
          "minitransformer.peft.hf.hf_tensor_name")
def _check_tensor_name(fn):
    adapter = pick(1, "task", "sorting", "default", "v2")
    block = pick(2, 0, 1)
    cases = [
        ("a LoRA A matrix in a Classifier: prefix base_model.model., adapter name dropped",
         f"base.blocks.{block}.attn.q_proj.lora_A.{adapter}.weight"),
        ("a LoRA B matrix in a MiniTransformer (no base. in front)", f"blocks.{block}.mlp.fc_in.lora_B.{adapter}.weight"),
        ("an IA3 key scale becomes the projection's ia3_l", f"base.blocks.{block}.attn.k_proj.scales.{adapter}"),
        ("an IA3 scale on mlp.act is HF's input scale of mlp.fc_out",
         f"base.blocks.{block}.mlp.act.scales.{adapter}"),
    ]
    for description, name in cases:
        got = call_learner(fn, name)
        expected = hf_tensor_name_reference(name)
        message = f"{name!r} -> you gave {got!r}; HF writes {expected!r}"
        if isinstance(got, str) and adapter in got.split("."):
            message += " (HF keeps one adapter per file and leaves its name out)"
        yield Part(description, got == expected, message)


def predict_trainable_parameters_reference(config: dict, r: int, num_classes: int) -> tuple[int, int]:
    """(trainable, all) as HF prints them for LoRA on q and v with modules_to_save=["head"] on a Classifier."""
    model = Classifier(MiniTransformer(ModelConfig(**config)), num_classes)
    base = sum(p.numel() for p in model.parameters())
    d, layers = config["d_model"], config["n_layer"]
    lora = layers * 2 * r * (d + d)  # A (r x d) and B (d x r) on q and v in every block
    head = d * num_classes + num_classes  # modules_to_save trains a copy of the head, counted beside the original
    return lora + head, base + lora + head


@register("10.2", "predict print_trainable_parameters()", 3, predict_trainable_parameters_reference,
          "minitransformer.course.check.ch10.predict_trainable_parameters_reference")
def _check_trainable(fn):
    from ...checkpoint import load_base

    shipped = load_base().config.to_dict()
    config = pick(3, shipped, {**shipped, "d_model": 48, "n_head": 4}, {**shipped, "n_layer": 3},
                  {**shipped, "d_model": 32, "n_head": 2, "vocab_size": 40})
    r, classes = pick(4, (8, 2), (4, 3), (2, 2), (16, 5))
    hf = _hf()
    torch.manual_seed(0)
    model = Classifier(MiniTransformer(ModelConfig(**config)), classes)
    wrapped = hf.get_peft_model(model, hf.LoraConfig(r=r, target_modules=["q_proj", "v_proj"], modules_to_save=["head"]))
    trainable, total = wrapped.get_nb_trainable_parameters()
    got = call_learner(fn, dict(config), r, classes)
    if not (isinstance(got, (tuple, list)) and len(got) == 2 and all(isinstance(x, int) for x in got)):
        yield Part("returns (trainable, all) as two ints", False, f"got {got!r}")
        return
    yield Part("returns (trainable, all) as two ints", True)
    lora = config["n_layer"] * 2 * r * 2 * config["d_model"]
    head = config["d_model"] * classes + classes
    lm_head = config["vocab_size"] * config["d_model"]
    copied = {n for n, m in wrapped.named_modules() if isinstance(m, hf.utils.ModulesToSaveWrapper)}
    lm_head_copied = any(n.endswith("base.lm_head") for n in copied)
    message = f"HF prints trainable {trainable:,}; you predicted {got[0]:,}"
    if got[0] == lora + head and lm_head_copied:
        message += (f": LoRA and the head are right, but peft {hf.__version__}'s modules_to_save=[\"head\"] also "
                    "matched base.lm_head")
    elif got[0] == lora + head + lm_head and not lm_head_copied:
        message += (f": you counted a copy of base.lm_head, but peft {hf.__version__} matches modules_to_save by whole "
                    "name parts, so [\"head\"] copies the task head only (releases before 0.22 also copied base.lm_head)")
    elif got[0] == lora:
        message += ": the head's copy (modules_to_save) trains too"
    yield Part("the trainable count, with HF's extras", got[0] == trainable, message)
    yield Part("the 'all params' count", got[1] == total,
               f"HF prints all params {total:,}; you predicted {got[1]:,}. It counts the base model, the LoRA "
               "matrices and the modules_to_save copies (the originals stay in the model beside them)")


hf_lora_config = checker("10.1")
hf_trainable_parameters = checker("10.2")
hf_tensor_name = checker("10.3")
