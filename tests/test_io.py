"""muso_jax.io: atomic writes and their permissions, the writable-path check, cleanup of killed
writers' temporary files, result files, and the network cache (keyed by data, verified on load)."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muso_jax.io import cache, files, reports
from muso_jax.io.cache import CacheWarning, NetworkCache
from muso_jax.nn.models import make_model
from muso_jax.nn.state import split
from muso_jax.nn.train import TrainConfig


def _leftovers(folder):
    return [p.name for p in folder.rglob(f"{files.TEMP_PREFIX}*")]


# --- files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_creates_files_with_the_umask_mode(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        path = files.write_bytes(tmp_path / "sub" / "a.bin", b"abc")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"abc"
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_atomic_write_that_fails_keeps_the_old_file_and_no_temporary(tmp_path):
    path = files.write_bytes(tmp_path / "a.txt", b"old")

    def broken(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        files.atomic_write(path, broken)
    assert path.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_check_writable_refuses_early_and_creates_nothing(tmp_path):
    blocker = tmp_path / "some_file.txt"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=r"`json`.*some_file.txt/out.json.*some_file.txt' is a file, not a folder"):
        files.check_writable(blocker / "out.json", name="json")
    with pytest.raises(ValueError, match="`out`.*existing file"):
        files.check_writable(blocker, name="out", folder=True)
    with pytest.raises(ValueError, match="`json`.*existing folder"):
        files.check_writable(tmp_path, name="json")
    deep = tmp_path / "new" / "deeper" / "r.json"
    assert files.check_writable(deep, name="json") == deep
    assert sorted(p.name for p in tmp_path.iterdir()) == ["some_file.txt"]  # nothing created
    if os.geteuid() != 0:  # root writes into read-only folders
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        with pytest.raises(ValueError, match="`cache`.*not writable"):
            files.check_writable(locked / "c", name="cache", folder=True)


def test_stale_temporaries_of_a_killed_writer_are_removed_on_open(tmp_path):
    """A writer SIGKILLed inside atomic_write leaves its temporary file; opening the cache
    removes it, and keeps a running writer's temporary file and unrelated hidden files."""
    entry = tmp_path / "cache" / "0123abcd"
    entry.mkdir(parents=True)
    script = ("import sys, time\nfrom muso_jax.io.files import atomic_write\n"
              "def slow(fh):\n    fh.write(b'partial')\n    fh.flush()\n    print('ready', flush=True)\n"
              "    time.sleep(120)\n"
              f"atomic_write({str(entry / 'final.npz')!r}, slow)\n")
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        writer.kill()
        writer.stdout.close()
    stale = _leftovers(entry)
    assert len(stale) == 1 and stale[0].startswith(f"{files.TEMP_PREFIX}{writer.pid}-")
    running = entry / f"{files.TEMP_PREFIX}{os.getpid()}-beef-checkpoint.npz"  # this process: still writing
    running.write_bytes(b"in progress")
    (entry / ".notes").write_text("not ours")
    NetworkCache(tmp_path / "cache")
    assert _leftovers(entry) == [running.name] and (entry / ".notes").exists()
    assert not (entry / "final.npz").exists()


def test_a_reused_process_id_does_not_keep_an_old_temporary(tmp_path):
    # Our own parent runs, but started long after this file was last written: not its file.
    old = tmp_path / f"{files.TEMP_PREFIX}{os.getppid()}-0000-r.json"
    old.write_bytes(b"x")
    os.utime(old, (1e9, 1e9))  # 2001
    assert files.clean_stale_temps(tmp_path) == [old] and not old.exists()


# --- reports -------------------------------------------------------------------------------

def test_json_csv_and_text_reports(tmp_path):
    path = reports.write_json(tmp_path / "r.json", dict(a=np.float32(1.5), b=np.arange(3), c=float("nan"),
                                                        d=(np.bool_(True), np.int64(2))))
    assert json.loads(path.read_text()) == dict(a=1.5, b=[0, 1, 2], c=None, d=[True, 2])
    csv = reports.write_csv(tmp_path / "t.csv", ["method", "UA"], [["MUSO", 1 / 3], ["FT", 2.0]])
    assert csv.read_text() == "method,UA\nMUSO,0.333333\nFT,2\n"
    with pytest.raises(ValueError, match="`rows`.*commas"):
        reports.write_csv(tmp_path / "bad.csv", ["a"], [["x,y"]])
    assert reports.write_text(tmp_path / "n.md", "# hi\n").read_text() == "# hi\n"
    assert _leftovers(tmp_path) == [] and not (tmp_path / "bad.csv").exists()


# --- the network cache ---------------------------------------------------------------------

CFG = TrainConfig(epochs=2, batch_size=8, lr=0.1)


def _toy(flip=False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    return (-x if flip else x), (x[:, 0] > 0).astype(np.int32)


def _net0():
    return split(make_model("mlp", (4,), 2, seed=1, hidden=(8,)))


def _same(a, b):
    return all(bool(jnp.array_equal(u, v)) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _train(store, description=None, key=0, x=None, y=None, **kw):
    batches = []
    if x is None:
        x, y = _toy()
    net, seconds = store.trained(jax.random.key(key), _net0(), x, y, CFG,
                                 description=description or dict(role="original"),
                                 on_progress=batches.append, **kw)
    return net, seconds, sum(batches)


def test_cache_hit_and_a_key_of_the_data_not_of_a_path(tmp_path):
    store = NetworkCache(tmp_path / "c")
    description = dict(role="original", data="npz")  # what a caller knows: a name, no content
    a, seconds, trained = _train(store, description)
    assert trained > 0 and seconds > 0
    b, again, trained = _train(store, description)
    assert trained == 0 and again == seconds and _same(a, b)  # a hit: nothing trained
    x2, y2 = _toy(flip=True)  # the "file" now holds other data
    c, _, trained = _train(store, description, x=x2, y=y2)
    assert trained > 0 and not _same(a, c)
    assert len(list((tmp_path / "c").iterdir())) == 2
    _, _, trained = _train(store, description, key=1)  # the PRNG key is part of the key too
    assert trained > 0


def test_corrupt_or_deleted_config_is_a_miss_with_a_warning_naming_the_file(tmp_path):
    store = NetworkCache(tmp_path / "c")
    reference, _, _ = _train(store)
    folder = store.entry(jax.random.key(0), _net0(), *_toy(), CFG, description=dict(role="original"))
    (folder / "config.json").write_text("{not json")
    with pytest.warns(CacheWarning, match=r"config.json cannot be read.*training again"):
        net, _, trained = _train(store)
    assert trained > 0 and _same(net, reference)
    assert json.loads((folder / "config.json").read_text())["description"] == dict(role="original")
    (folder / "config.json").unlink()
    with pytest.warns(CacheWarning, match="config.json is missing"):
        _, _, trained = _train(store)
    assert trained > 0
    (folder / "config.json").write_text('{"description": "another"}')
    with pytest.warns(CacheWarning, match="config.json holds a different key"):
        _, _, trained = _train(store)
    assert trained > 0


def test_swapped_final_files_are_detected_and_retrained(tmp_path):
    store = NetworkCache(tmp_path / "c")
    a, _, _ = _train(store, dict(role="a"))
    b, _, _ = _train(store, dict(role="b"), key=1)
    fa = store.entry(jax.random.key(0), _net0(), *_toy(), CFG, description=dict(role="a")) / "final.npz"
    fb = store.entry(jax.random.key(1), _net0(), *_toy(), CFG, description=dict(role="b")) / "final.npz"
    data_a = fa.read_bytes()
    fa.write_bytes(fb.read_bytes())
    fb.write_bytes(data_a)
    with pytest.warns(CacheWarning, match=r"final.npz does not match the SHA-256"):
        again, _, trained = _train(store, dict(role="a"))
    assert trained > 0 and _same(again, a)
    fb.unlink()
    with pytest.warns(CacheWarning, match="final.npz is missing"):
        _train(store, dict(role="b"), key=1)


def test_cached_training_resumes_after_an_interruption_and_checks_the_checkpoint(tmp_path):
    store = NetworkCache(tmp_path / "c")
    reference, _, _ = _train(store, dict(role="ref"))

    def interrupt(epoch, *_):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(store, dict(role="b"), on_epoch=interrupt)
    folder = store.entry(jax.random.key(0), _net0(), *_toy(), CFG, description=dict(role="b"))
    assert (folder / "checkpoint.npz").exists() and not (folder / "manifest.json").exists()
    resumed, _, trained = _train(store, dict(role="b"))
    assert trained == 5 and _same(reference, resumed)  # one epoch of 40 / 8 batches left
    assert not (folder / "checkpoint.npz").exists() and not (folder / "checkpoint.json").exists()

    with pytest.raises(KeyboardInterrupt):
        _train(store, dict(role="c"), on_epoch=interrupt)
    folder = store.entry(jax.random.key(0), _net0(), *_toy(), CFG, description=dict(role="c"))
    (folder / "checkpoint.npz").write_bytes(b"garbage")
    with pytest.warns(CacheWarning, match="checkpoint.*does not match.*training from epoch 0"):
        restarted, _, trained = _train(store, dict(role="c"))
    assert trained == 10 and _same(reference, restarted)


def test_save_and_load_refuse_a_wrong_or_unreadable_file(tmp_path):
    net = split(make_model("mlp", (4,), 2, seed=1, hidden=(16,)))
    sha = cache.save(tmp_path / "net.npz", net)
    assert sha == cache.file_sha256(tmp_path / "net.npz")
    assert _same(net, cache.load(tmp_path / "net.npz", net))
    other = split(make_model("mlp", (4,), 2, seed=1, hidden=(8,)))
    with pytest.raises(ValueError, match="`cache`.*does not match"):
        cache.load(tmp_path / "net.npz", other)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="`cache`.*cannot read.*bad.npz"):
        cache.load(tmp_path / "bad.npz", net)
    assert _leftovers(tmp_path) == []
