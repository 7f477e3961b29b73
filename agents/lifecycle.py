"""A run's lifecycle: start one (``new_run``), resume one (``resume_run``), load one's
generator for sampling (``load_generator_for_sampling``), and the data a config names."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from seqgan_agents import distributed
from seqgan_agents.distributed import DistContext, FollowerRun
from seqgan_agents.reinforce import resolve_device
from seqgan_agents.trainer import Trainer
from seqgan_agents.trainer_config import PPO_AGENTS, TrainConfig, train_config_from_dict, with_data_length
from seqgan_env.data.subword import HFTokenizer, build_tokenizer, is_hf_tokenizer_json, load_tokenizer_source
from seqgan_env.data.text import TextDataset, file_sha256, load_dataset, load_texts
from seqgan_env.data.tokenizer import EOS_ID, CharTokenizer
from seqgan_env.eval.oracle import DEFAULT_ORACLE_PATH
from seqgan_env.models.pretrained import check_causal_config, check_directory, fingerprint, make_generator
from seqgan_env.rewards.sources import deferred_imports
from seqgan_env.runs.configio import config_to_dict
from seqgan_env.runs.rundir import RunDir


def load_tokenizer(path: Path):
    """A run's tokenizer.json: the char tokenizer, the oracle's integer tokenizer (by its "type"), or a
    Hugging Face tokenizer.json (it has a "model" object)."""
    from seqgan_env.data.tokenizer import read_tokenizer_json
    from seqgan_env.eval.oracle_data import IntTokenizer

    kind = read_tokenizer_json(Path(path), "CharTokenizer")
    if is_hf_tokenizer_json(kind):
        return HFTokenizer.load(path)
    return IntTokenizer.load(path) if isinstance(kind, dict) and kind.get("type") == "int" else CharTokenizer.load(path)


def run_tokenizer(config: TrainConfig) -> HFTokenizer | None:
    """The subword tokenizer ``config.tokenizer`` asks for (trained on the data file, or loaded), None for char.

    ``auto``: the tokenizer of ``generator.pretrained`` when set (reordered to PAD, BOS, EOS = 0, 1, 2).
    """
    tc = config.tokenizer
    if tc.kind == "auto" and config.generator.pretrained:
        check_directory(config.generator.pretrained, "generator.pretrained")  # the model's problems first
        tok, _ = load_tokenizer_source(config.generator.pretrained, tc.pad_token, tc.bos_token, tc.eos_token)
        return tok
    if tc.kind in ("auto", "char"):
        return None
    texts = load_texts(config.data.path, None, skip_blank=config.data.skip_blank, check_length=False) \
        if tc.kind != "file" else []
    return build_tokenizer(tc, texts)


def load_run_data(config: TrainConfig, tokenizer: CharTokenizer | HFTokenizer | None = None) -> TextDataset:
    """The run's data, validated; with ``tokenizer`` (a resumed run's) every symbol must be in its vocabulary.

    Without one, ``config.tokenizer`` decides (``run_tokenizer``; the character tokenizer is built
    from the data). With ``data.max_length`` None the data decides it, counted in the tokenizer's
    tokens (``data.max_length`` of the result); ``with_data_length`` writes it into the config.
    """
    if config.data.is_oracle:
        from seqgan_env.eval.oracle_data import load_oracle_dataset

        return load_oracle_dataset(config.data.oracle_train, config.data.oracle_valid, seed=config.seed)
    if tokenizer is None:
        tokenizer = run_tokenizer(config)
    data = load_dataset(
        config.data.path,
        max_length=config.data.max_length,
        valid_fraction=config.data.valid_fraction,
        seed=config.seed,
        tokenizer=tokenizer,
        skip_blank=config.data.skip_blank,
        allow_eos=config.data.eos,
        skip_long=config.data.skip_long,
    )
    if config.data.valid_fraction > 0 and len(data.valid_texts) == 0:
        raise ValueError(
            f"data file '{config.data.path}' has {len(data.train_texts)} usable line(s): at least 2 are needed, one "
            f"held out for evaluation; fix: add lines or set data.valid_fraction=0."
        )
    return data


#: Fewest of a data file's lines a run may keep when data.skip_long leaves the longer ones out.
MIN_KEPT_FRACTION = 0.5


def _check_kept(config: TrainConfig, data: TextDataset) -> None:
    """Stop a run whose data.skip_long left out most of the data (e.g. --data coco --tokenizer char: captions
    are far longer in characters than in the preset's max_length), with the numbers and the fix."""
    stats = getattr(data, "stats", None) or {}
    skipped, kept = stats.get("skipped_long", 0), stats.get("lines", 0)
    if not skipped or kept >= MIN_KEPT_FRACTION * (kept + skipped):
        return
    unit = "characters" if config.tokenizer.kind == "char" or (config.tokenizer.kind == "auto"
                                                                 and not config.generator.pretrained) else "tokens"
    raise ValueError(
        f"data.skip_long left out {skipped} of {kept + skipped} lines of '{config.data.path}' (longer than "
        f"data.max_length={config.data.max_length} {unit}); only {kept} would be trained on; fix: raise "
        f"--data.max-length, or use a tokenizer with fewer tokens per line (e.g. --tokenizer bpe for text).")


#: Largest share of the data's tokens a new run's tokenizer may map to its unknown token.
MAX_UNK_FRACTION = 0.5


def _check_unknown(config: TrainConfig, data: TextDataset) -> None:
    """Stop a run whose tokenizer maps most of the data to its unknown token (e.g. --tokenizer word on the
    census names: each name occurs once, min_frequency 2 keeps none, every token is <unk>), with the numbers
    and the fix. The counts go into the data's stats (``unk_tokens`` of ``tokens``)."""
    tok = data.tokenizer
    unk = getattr(tok, "unk_id", None) if isinstance(tok, HFTokenizer) else None
    if unk is None:
        return
    rows = torch.cat([data.train, data.valid])  # (N, T)
    content = rows > EOS_ID  # PAD, BOS, EOS are the contract's, not the text's
    total, unknown = int(content.sum()), int((rows == unk).sum())
    if isinstance(getattr(data, "stats", None), dict):
        data.stats.update(tokens=total, unk_tokens=unknown)
    if not total or unknown <= MAX_UNK_FRACTION * total:
        return
    name = tok.tokenizer.id_to_token(unk)
    kind = config.tokenizer.kind
    fix = ("use a tokenizer that covers the data: --tokenizer char (short lines such as names) or --tokenizer bpe"
           + (f", or keep more of its words: --tokenizer.min-frequency 1 (now {config.tokenizer.min_frequency}) and "
              f"a --tokenizer.vocab-size above the data's distinct words (now {config.tokenizer.vocab_size})"
              if kind == "word" else ""))
    raise ValueError(
        f"the tokenizer (--tokenizer {kind}, {tok.vocab_size} ids) maps {unknown} of the {total} tokens of "
        f"'{config.data.path}' ({unknown / total:.0%}) to {name}: the generator would learn to write {name}; "
        f"fix: {fix}.")


def load_test_texts(config: TrainConfig) -> list[str] | None:
    """The lines of ``data.test_path`` (held out: BLEU references, NLL-test), read loudly; None without one."""
    if config.data.test_path is None:
        return None
    return load_texts(config.data.test_path, None, skip_blank=config.data.skip_blank)


def new_run(config: TrainConfig) -> Trainer:
    """A new run directory and the trainer of ``config.agent`` (REINFORCE, or SB3 PPO for comparison).

    The data is loaded and validated before the directory exists, and a directory
    whose trainer cannot be built is removed: a failed start leaves nothing behind.
    Under torchrun (WORLD_SIZE > 1) this joins the process group; rank 0 creates the
    directory (config.json gets a ``distributed`` block: world_size, backend, per-rank
    and global batch size) and the other ranks get a read-only :class:`FollowerRun`.
    """
    ctx = _join(config)
    for what, directory in (("generator.pretrained", config.generator.pretrained),
                            ("discriminator.pretrained", config.discriminator.pretrained)):
        if directory:  # named before anything else reads it (its fingerprint would fail with a bare [Errno 2])
            check_causal_config(check_directory(directory, what), what)  # a bidirectional model: refused first
    tokenizer = run_tokenizer(config)
    if tokenizer is not None and ctx.is_distributed:  # one vocabulary for all ranks (Unigram training is not
        tokenizer = HFTokenizer.from_str(distributed.broadcast_text(tokenizer.to_str(), ctx))  # deterministic)
    data = load_run_data(config, tokenizer)
    _check_kept(config, data)
    _check_unknown(config, data)
    load_test_texts(config)  # a missing or broken test file stops the run before its directory exists
    config = with_data_length(config, data.max_length)
    config = _with_absolute_paths(config)  # eval and --resume from another directory read the same files
    data_file = str(DEFAULT_ORACLE_PATH) if config.data.is_oracle else config.data.path
    run, error = None, None
    created = _missing_dirs(Path(config.out_dir)) if ctx.is_main else []  # removed again if the start fails
    if ctx.is_main:
        try:
            extra = {"distributed": ctx.record(config.reinforce.batch_size)} if config.agent == "reinforce" else {}
            extra.update(_input_records(config))
            extra["data_stats"] = dict(data.stats) if isinstance(getattr(data, "stats", None), dict) else {}
            run = RunDir.create(config.out_dir, config.name, config_to_dict(config), data_path=data_file, extra=extra)
            run.acquire_lock()
        except BaseException as exc:  # tell the other ranks before raising, or they wait forever
            error = exc
    path = distributed.broadcast_text(str(run.path) if run is not None else "", ctx)
    if error is not None:
        _remove_empty(created)
        raise error
    if not path:
        raise RuntimeError(f"rank 0 could not create the run directory (its error is in its log); rank {ctx.rank} stops.")
    if run is None:
        run = FollowerRun(path, {"config": config_to_dict(config)})
    try:
        if config.agent in PPO_AGENTS:
            from seqgan_agents.ppo import PPOTrainer

            return PPOTrainer(config, run, data)
        return Trainer(config, run, data, dist=ctx)
    except BaseException:
        run.close()
        if ctx.is_main:
            shutil.rmtree(run.path, ignore_errors=True)
            _remove_empty(created)
        raise


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    for p in (path.absolute(), *path.absolute().parents):
        if p.exists():
            break
        missing.append(p)
    return missing


def _remove_empty(dirs: list[Path]) -> None:
    """Remove the directories a failed start created (deepest first), where they are still empty."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:  # not empty (another run appeared) or already gone
            return


def _with_absolute_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with data.path and data.test_path made absolute (a relative path means the start's directory)."""
    import dataclasses

    changes = {}
    if not config.data.is_oracle and not Path(config.data.path).is_absolute():
        changes["path"] = str(Path(config.data.path).absolute())
    if config.data.test_path is not None and not Path(config.data.test_path).is_absolute():
        changes["test_path"] = str(Path(config.data.test_path).absolute())
    return dataclasses.replace(config, data=dataclasses.replace(config.data, **changes)) if changes else config


def check_data_unchanged(run: RunDir | FollowerRun, config: TrainConfig) -> None:
    """Refuse a run whose data file is not the one it was trained on (the SHA-256 in config.json differs)."""
    recorded = (run.info.get("data") or {}).get("sha256")
    if recorded and Path(config.data.path).is_file() and file_sha256(config.data.path) != recorded:
        raise ValueError(
            f"data file '{config.data.path}' changed since run '{run.path}' started (sha256 differs); "
            f"fix: restore the original file or start a new run."
        )


def _input_records(config: TrainConfig) -> dict:
    """config.json blocks naming the run's other inputs: the test file and pretrained directories, hashed."""
    out: dict = {}
    if config.data.test_path is not None:
        out["test_data"] = {"path": str(Path(config.data.test_path).resolve()),
                            "sha256": file_sha256(config.data.test_path)}
    pre = {name: fingerprint(path) for name, path in (("generator", config.generator.pretrained),
                                                       ("discriminator", config.discriminator.pretrained)) if path}
    if pre:
        out["pretrained"] = pre
    return out


def _check_inputs_unchanged(run, config: TrainConfig) -> None:
    """A resumed run reads its pretrained directories again: refuse one that is gone or changed."""
    for name, record in ((run.info.get("pretrained") or {}).items()):
        path = Path(record["path"])
        if not path.is_dir():
            raise ValueError(f"run '{run.path}' started from {name}.pretrained='{path}', which no longer exists; "
                             f"fix: restore the directory (a run with a pretrained model resumes from it).")
        if fingerprint(path)["sha256"] != record["sha256"]:
            raise ValueError(f"{name}.pretrained='{path}' changed since run '{run.path}' started (sha256 differs); "
                             f"fix: restore the original directory or start a new run.")


def _join(config: TrainConfig) -> DistContext:
    """This process's place in a torchrun launch, joining its process group (``SINGLE`` without torchrun)."""
    ctx = DistContext.from_env()
    if not ctx.is_distributed:
        return ctx
    if config.agent != "reinforce":
        raise ValueError(
            f"agent={config.agent} cannot train data-parallel (this launch has WORLD_SIZE={ctx.world_size}): only "
            f"the REINFORCE trainer runs under torchrun; fix: run it in one process (seqgan-env train --agent "
            f"{config.agent}, without torchrun) or use --agent reinforce."
        )
    return distributed.init(resolve_device(config.reinforce.device))


def check_world_size(run: RunDir | FollowerRun, ctx: DistContext) -> None:
    """Refuse to resume ``run`` with a world size other than the one it was trained with."""
    saved = (run.info.get("distributed") or {}).get("world_size", 1)
    if saved == ctx.world_size:
        return
    if saved > 1:
        fix = (f"relaunch with {saved} ranks: torchrun --nproc_per_node={saved} -m seqgan_env.cli train --resume "
               f"{run.path} (multi-node: --nnodes x --nproc_per_node = {saved})")
    else:
        fix = f"resume in one process, without torchrun: seqgan-env train --resume {run.path}"
    raise ValueError(
        f"run '{run.path}' was trained with world_size={saved} but this launch has world_size={ctx.world_size}; a run "
        f"resumes only with its own world size (every rank's batch and random streams are in the checkpoint, and "
        f"the global batch is per-rank batch x world size); fix: {fix}."
    )


def resume_run(path: str | Path) -> Trainer:
    """Continue a run from its latest checkpoint, with the world size it was trained with.

    Under torchrun every rank reads the checkpoint (multi-node: the run directory must
    be on a filesystem all nodes see); only rank 0 locks and writes the directory.
    """
    ctx = DistContext.from_env()
    run: RunDir | FollowerRun = RunDir.open(path, tensorboard=ctx.is_main)
    if not ctx.is_main:
        run = FollowerRun(run.path, run.info, reader=run)
    try:
        check_world_size(run, ctx)
        ctx = _join(run_config(run))
        run.acquire_lock()
        return _resume(run, ctx)
    except BaseException:
        run.close()
        raise


def _resume(run: RunDir | FollowerRun, ctx: DistContext | None = None):
    config = run_config(run, import_sources=True)  # rewards are computed: the sources are imported
    if config.agent in PPO_AGENTS and config.ppo.policy != "generator":
        raise ValueError(f"run '{run.path}' was trained with agent={config.agent} and ppo.policy={config.ppo.policy}, "
                         f"which cannot be resumed (SB3's MLP policy keeps no continuation state); fix: start a new "
                         f"run, with --set ppo.policy=generator for one that resumes.")
    check_data_unchanged(run, config)
    _check_inputs_unchanged(run, config)
    tok_path = run.path / "tokenizer.json"
    if not tok_path.is_file():
        raise ValueError(f"run '{run.path}' has no tokenizer.json; fix: resume a run made by `seqgan-env train`.")
    data = load_run_data(config, load_tokenizer(tok_path))
    if config.agent in PPO_AGENTS:
        from seqgan_agents.ppo import PPOTrainer

        trainer = PPOTrainer(config, run, data)
    else:
        trainer = Trainer(config, run, data, dist=ctx)
    if run.latest_checkpoint() is None:
        raise ValueError(f"run '{run.path}' has no checkpoint to resume from; fix: start a new run with `seqgan-env train`.")
    trainer.load_checkpoint()
    run.truncate_metrics_after(trainer.step)
    return trainer


def run_config(run: RunDir | FollowerRun, import_sources: bool = False) -> TrainConfig:
    """The TrainConfig of ``run``'s config.json; a value this version refuses is named with the file.

    ``import_sources``: import the reward-source modules (to compute rewards); else they are parsed for form
    only (``deferred_imports``) and no user code runs.
    """
    try:
        with deferred_imports():
            config = train_config_from_dict(run.config)
    except (ValueError, TypeError) as exc:
        what = str(exc).split("; fix:")[0].split(" Fix:")[0].rstrip(".")  # that fix is for a new run's options
        raise ValueError(f"{run.path / 'config.json'} holds a config this version refuses: {what}; fix: restore "
                         f"the file as `seqgan-env train` wrote it, or start a new run.") from None
    return train_config_from_dict(run.config) if import_sources else config


def load_generator_for_sampling(run_path: str | Path):
    """(generator, tokenizer, config) of a finished or interrupted run, for `seqgan-env sample`."""
    from seqgan_env.runs.rundir import load_generator_export

    run = RunDir.open(run_path, tensorboard=False)
    try:
        config = run_config(run)  # sampling computes no reward: the run's reward-source modules are not imported
    except BaseException:
        run.close()
        raise
    # a PPO run trains the generator when config.json says ppo.policy=generator (runs of older versions have no
    # such key: their policy was the MLP)
    generator_ppo = config.agent in PPO_AGENTS and (run.config.get("ppo") or {}).get("policy") == "generator"
    if config.agent in PPO_AGENTS and not generator_ppo:
        run.close()
        raise ValueError(
            f"run '{run.path}' was trained with agent={config.agent} and ppo.policy=mlp, whose policy is not a Llama "
            f"generator; its samples are in {run.path / 'samples'}; fix: train with --set ppo.policy=generator."
        )
    export = run.path / "generator"
    tok_path = run.path / "tokenizer.json"
    if not tok_path.is_file():
        raise ValueError(f"run '{run.path}' has no tokenizer.json; fix: pass a run directory made by `seqgan-env train`.")
    tokenizer = load_tokenizer(tok_path)
    if (export / "config.json").is_file():
        generator = load_generator_export(export)  # loud on a corrupt file, no progress bar
        if generator.config.vocab_size != tokenizer.vocab_size:
            raise ValueError(
                f"'{tok_path}' has vocab_size {tokenizer.vocab_size} but the generator in '{export}' has "
                f"{generator.config.vocab_size}; fix: restore the run's own tokenizer.json."
            )
    else:
        ckpt = run.latest_checkpoint()
        if ckpt is None:
            raise ValueError(f"run '{run.path}' has neither an exported generator nor a checkpoint; fix: train it first.")
        tensors, _ = run.load_checkpoint(ckpt)
        with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten; the global RNG stays
            generator = make_generator(config.generator, tokenizer)
        owner = "policy" if generator_ppo else "agent"  # PPO: GeneratorPolicy's state (generator.* beside value_net.*)
        sd = {k[len("generator."):]: v for k, v in tensors[owner].items() if k.startswith("generator.")}
        try:
            generator.load_state_dict(sd)
        except RuntimeError as exc:
            raise ValueError(f"checkpoint {ckpt} does not match the run's generator config: {exc}") from None
    run.close()
    return generator, tokenizer, config


def load_discriminator_for_sampling(run_path: str | Path, vocab_size: int, device: str = "cpu", tokenizer=None):
    """The run's discriminator at its latest checkpoint (for `seqgan-env sample --d-filter`).

    ``tokenizer``: the run's (needed when its discriminator has a pretrained backbone)."""
    from seqgan_env.models.discriminator import Discriminator

    run = RunDir.open(run_path, tensorboard=False)
    try:
        config = run_config(run)  # as load_generator_for_sampling: no reward-source module is imported
        ckpt = run.latest_checkpoint()
        if ckpt is None:
            raise ValueError(f"run '{run.path}' has no checkpoint, so no trained discriminator for --d-filter; "
                             f"fix: train it first (seqgan-env train).")
        tensors, _ = run.load_checkpoint(ckpt)
        if "discriminator" not in tensors:
            raise ValueError(f"checkpoint {ckpt} holds no discriminator; fix: use a run made by seqgan-env train.")
        disc = Discriminator(vocab_size, config.discriminator_model, config.discriminator, device=device,
                             tokenizer=tokenizer)
        disc.load_state_dict(tensors["discriminator"], source=str(ckpt))
        return disc
    finally:
        run.close()


__all__ = ["load_discriminator_for_sampling", "load_generator_for_sampling", "load_run_data", "new_run", "resume_run"]
