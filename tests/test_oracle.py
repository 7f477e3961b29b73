"""The SeqGAN oracle LSTM, its data set and the integer tokenizer.

Check values come from the data README (an independent numpy implementation):
oracle samples score 5.744 +- 0.02 nats/token, uniform random tokens 11.435.
The fast tests use 2,000 sequences (standard error about 0.01-0.02) with a wider
tolerance; the ``slow`` ones use the README's 9,984.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from seqgan_env.eval.likelihood import generator_nll
from seqgan_env.eval.oracle import (
    DEFAULT_ORACLE_PATH,
    PARAM_SHAPES,
    OracleLSTM,
    load_oracle_arrays,
)
from seqgan_env.eval.oracle_data import IntTokenizer, load_oracle_dataset
from seqgan_env.models.networks import ModelConfig, build_generator

ORACLE_SELF_NLL = 5.744
UNIFORM_NLL = 11.435


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Many small (B, 5000) ops: with 2 OpenMP threads on a busy 2-core CPU they run up
    to 100x slower than on 1 thread (thread hand-off stalls); restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def oracle() -> OracleLSTM:
    return OracleLSTM.from_npz()


def reference_nll(tokens: np.ndarray) -> np.ndarray:
    """The README's step, written out in float64 numpy, teacher-forced: (N,) nats/token."""
    a = {k: v.astype(np.float64) for k, v in load_oracle_arrays().items()}
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))
    n, length = tokens.shape
    h = np.zeros((n, 32))
    c = np.zeros((n, 32))
    x = np.repeat(a["embedding"][:1], n, axis=0)  # start input: embedding[0]
    total = np.zeros(n)
    for t in range(length):
        i = sig(x @ a["Wi"] + h @ a["Ui"] + a["bi"])
        f = sig(x @ a["Wf"] + h @ a["Uf"] + a["bf"])
        o = sig(x @ a["Wog"] + h @ a["Uog"] + a["bog"])
        c = f * c + i * np.tanh(x @ a["Wc"] + h @ a["Uc"] + a["bc"])
        h = o * np.tanh(c)
        logits = h @ a["Wo"] + a["bo"]
        m = logits.max(axis=1, keepdims=True)
        logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        total -= logp[np.arange(n), tokens[:, t]]
        x = a["embedding"][tokens[:, t]]
    return total / length


# --------------------------------------------------------------------- sampling
@pytest.mark.parametrize("n,length,batch_size", [(5, 20, 2048), (7, 3, 2), (0, 20, 4)])
def test_sample_shape_dtype_range(oracle, n, length, batch_size):
    s = oracle.sample(n, length=length, generator=torch.Generator().manual_seed(0), batch_size=batch_size)
    assert s.shape == (n, length) and s.dtype == torch.long
    if n:
        assert int(s.min()) >= 0 and int(s.max()) < 5000


def test_sample_deterministic_with_seed(oracle):
    a = oracle.sample(64, generator=torch.Generator().manual_seed(3))
    b = oracle.sample(64, generator=torch.Generator().manual_seed(3))
    c = oracle.sample(64, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_nll_matches_numpy_reference_of_readme_equations(oracle):
    tokens = oracle.sample(16, generator=torch.Generator().manual_seed(1))
    tokens[0] = 0  # token 0 is a normal token too
    tokens[1] = 4999
    ours = oracle.nll(tokens).numpy()
    np.testing.assert_allclose(ours, reference_nll(tokens.numpy()), rtol=0, atol=1e-4)
    assert oracle.nll_oracle(tokens) == pytest.approx(float(ours.mean()), abs=1e-6)


def test_first_token_frequencies_follow_oracle_distribution(oracle):
    """The sampler draws from softmax(logits) at step 0 (chi-square on the top tokens)."""
    n = 4000
    s = oracle.sample(n, length=1, generator=torch.Generator().manual_seed(7))
    x, h, c = oracle.initial_state(1)
    probs = torch.softmax(oracle.step(x, h, c)[0][0].double(), dim=0)  # (V,)
    top = probs.argsort(descending=True)[:5]
    counts = torch.bincount(s[:, 0], minlength=5000).double()
    expected = n * probs[top]
    observed = counts[top]
    rest_e, rest_o = n - expected.sum(), n - observed.sum()
    chi2 = float((((observed - expected) ** 2) / expected).sum() + (rest_o - rest_e) ** 2 / rest_e)
    assert chi2 < 20.5  # chi-square, 5 dof, p = 0.001


# ------------------------------------------------------------------ check values
def test_check_value_oracle_samples(oracle):
    s = oracle.sample(2000, generator=torch.Generator().manual_seed(0))
    assert oracle.nll_oracle(s) == pytest.approx(ORACLE_SELF_NLL, abs=0.06)


def test_check_value_uniform_tokens(oracle):
    r = torch.randint(0, 5000, (2000, 20), generator=torch.Generator().manual_seed(0))
    assert oracle.nll_oracle(r) == pytest.approx(UNIFORM_NLL, abs=0.06)


@pytest.mark.slow
def test_check_values_full_size(oracle):
    s = oracle.sample(9984, generator=torch.Generator().manual_seed(0))
    assert oracle.nll_oracle(s) == pytest.approx(ORACLE_SELF_NLL, abs=0.02)
    r = torch.randint(0, 5000, (9984, 20), generator=torch.Generator().manual_seed(0))
    assert oracle.nll_oracle(r) == pytest.approx(UNIFORM_NLL, abs=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(oracle):
    gpu = OracleLSTM.from_npz(device="cuda")
    a = oracle.sample(32, generator=torch.Generator().manual_seed(5))
    b = gpu.sample(32, generator=torch.Generator().manual_seed(5))  # CPU generator, CUDA oracle
    assert b.device.type == "cuda"
    assert (a == b.cpu()).float().mean() > 0.95  # identical up to rare float ties
    torch.testing.assert_close(gpu.nll(a).cpu(), oracle.nll(a), atol=1e-4, rtol=0)


@pytest.mark.parametrize("bad", [[[5000] * 20], [[-1] * 20]])
def test_nll_rejects_out_of_range_tokens(oracle, bad):
    with pytest.raises(ValueError, match=r"\[0, 5000\).*IntTokenizer.to_oracle"):
        oracle.nll(torch.tensor(bad))


def test_nll_rejects_float_tokens(oracle):
    with pytest.raises(TypeError, match="float"):
        oracle.nll(torch.zeros(2, 20))


# ------------------------------------------------------------------ bad files
def _write(tmp_path, arrays):
    path = tmp_path / "oracle.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "edit,pattern",
    [
        (lambda a: a.pop("Uog"), r"missing array\(s\) \['Uog'\]"),
        (lambda a: a.pop("embedding"), r"missing array\(s\) \['embedding'\]"),
        (lambda a: a.__setitem__("Wo", np.zeros((32, 4999), np.float32)), r"'Wo' has shape \(32, 4999\)"),
        (lambda a: a.__setitem__("bi", np.zeros((1, 32), np.float32)), r"'bi' has shape \(1, 32\)"),
        (lambda a: a.__setitem__("extra", np.zeros(3)), r"unexpected array\(s\) \['extra'\]"),
        (lambda a: a.__setitem__("bc", np.full(32, np.nan, np.float32)), r"'bc' contains NaN"),
        (lambda a: a.__setitem__("bf", np.zeros(32, np.int64)), r"'bf' has dtype int64"),
    ],
)
def test_bad_npz_names_array_and_file(tmp_path, edit, pattern):
    arrays = load_oracle_arrays()
    edit(arrays)
    path = _write(tmp_path, arrays)
    with pytest.raises(ValueError, match=pattern) as info:
        OracleLSTM.from_npz(path)
    assert str(path) in str(info.value)


def test_not_an_npz_and_missing_file(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        OracleLSTM.from_npz(junk)
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        OracleLSTM.from_npz(tmp_path / "nope.npz")


def test_packaged_file_has_the_15_arrays():
    assert DEFAULT_ORACLE_PATH.is_file()
    arrays = load_oracle_arrays()
    assert list(arrays) == list(PARAM_SHAPES) and len(arrays) == 15


# ------------------------------------------------------------------ IntTokenizer
def test_int_tokenizer_sizes_and_round_trip():
    tok = IntTokenizer()
    assert tok.vocab_size == 5003 and tok.num_special == 3
    ids = tok.encode([0, 17, 4999])
    assert ids == [3, 20, 5002]
    assert tok.decode(ids) == "0 17 4999"


@pytest.mark.parametrize(
    "ids,text",
    [([1, 3, 7, 2, 5], "0 4"), ([3, 0, 4, 0], "0 1"), ([2, 3], ""), (torch.tensor([5002, 3]), "4999 0")],
)
def test_int_tokenizer_decode_stops_at_eos_skips_pad_bos(ids, text):
    assert IntTokenizer().decode(ids) == text


def test_int_tokenizer_rejects_out_of_range():
    tok = IntTokenizer()
    with pytest.raises(ValueError, match="oracle token 5000"):
        tok.encode([5000])
    with pytest.raises(ValueError, match="token id 5003"):
        tok.decode([5003])
    with pytest.raises(ValueError, match="id 2 at index"):
        tok.to_oracle(torch.tensor([[3, 2]]))


def test_int_tokenizer_batch_and_oracle_conversion():
    tok = IntTokenizer()
    oracle_tokens = torch.tensor([[0, 1, 2], [4999, 5, 6]])
    ids = tok.from_oracle(oracle_tokens)
    assert torch.equal(ids, oracle_tokens + 3)
    assert torch.equal(tok.to_oracle(ids), oracle_tokens)
    assert tok.decode_batch(ids) == ["0 1 2", "4999 5 6"]
    assert tok.encode_batch([[0], [1, 2]], max_length=3).tolist() == [[3, 2, 0], [4, 5, 2]]


def test_int_tokenizer_save_load(tmp_path):
    tok = IntTokenizer(num_symbols=10, offset=4)
    path = tok.save(tmp_path / "tok.json")
    data = json.loads(path.read_text())
    assert data["type"] == "int" and data["num_symbols"] == 10 and data["offset"] == 4
    assert IntTokenizer.load(path) == tok


@pytest.mark.parametrize(
    "data,pattern",
    [
        ({"type": "char", "format_version": 1, "special_tokens": ["<pad>", "<bos>", "<eos>"], "symbols": []}, "type='char'"),
        ({"type": "int"}, "missing key"),
        ({"type": "int", "format_version": 1, "special_tokens": ["<pad>", "<bos>", "<eos>"], "num_symbols": 5000, "offset": 1}, "offset"),
    ],
)
def test_int_tokenizer_from_dict_errors(data, pattern):
    with pytest.raises(ValueError, match=pattern):
        IntTokenizer.from_dict(data)


# ------------------------------------------------------------------ data set
def test_load_oracle_dataset(oracle):
    ds = load_oracle_dataset(n_train=40, n_valid=8, seed=3, oracle=oracle)
    assert ds.train.shape == (40, 20) and ds.valid.shape == (8, 20) and ds.train.dtype == torch.long
    assert int(ds.train.min()) >= 3 and int(ds.train.max()) < 5003  # never PAD/BOS/EOS
    assert ds.vocab_size == 5003 and ds.max_length == 20
    again = load_oracle_dataset(n_train=40, n_valid=2, seed=3, oracle=oracle)
    assert torch.equal(ds.train, again.train)  # train does not depend on n_valid
    other = load_oracle_dataset(n_train=40, n_valid=8, seed=4, oracle=oracle)
    assert not torch.equal(ds.train, other.train)
    assert ds.train_texts[0] == " ".join(str(int(k) - 3) for k in ds.train[0])
    # the training rows are oracle samples: their NLL is close to the oracle's own level
    assert math.isfinite(oracle.nll_oracle(ds.tokenizer.to_oracle(ds.train)))


def test_benchmark_metrics_are_nll_oracle_of_samples_and_nll_test_of_valid(oracle):
    ds = load_oracle_dataset(n_train=40, n_valid=8, seed=3, oracle=oracle)
    torch.manual_seed(0)
    gen = build_generator(ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1,
                                      max_position_embeddings=21), ds.vocab_size).eval()
    samples = ds.train[:5]  # any (N, 20) model ids stand for the generator's samples here
    got = ds.benchmark_metrics(gen, samples)
    assert got == {"nll_oracle": oracle.nll_oracle(ds.tokenizer.to_oracle(samples)), "nll_test": generator_nll(gen, ds.valid)}
    assert got["nll_test"] > 8.0  # an untrained generator over 5,003 ids: about log(5003) = 8.5 nats
