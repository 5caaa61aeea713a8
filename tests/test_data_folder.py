"""Your own images (`--dataset folder`): generated folders of PNG and JPEG, grey and colour, with and without class
sub-folders, each way a folder can be wrong, and the streaming path (a tiny memory budget) against the in-memory one.

Chapter 04a tests the same functions on a few images; here the folders are a little odder (grey with alpha, 1-bit,
colour among grey, hidden folders, clutter), the stream runs with worker processes through training steps, and a
file that only fails when decoded (a truncated PNG) is named by the stream in one line."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_lit.data import FolderStream, ImageData, folder_files, load_folder, load_image_data

rng = np.random.default_rng(0)


def save(path, mode='L', size=(12, 10), fmt=None):
    "A random image of PIL `mode`, size (w, h), at `path` (folders made as needed); returns the path"
    path.parent.mkdir(parents=True, exist_ok=True)
    a = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(a).convert(mode).save(path, format=fmt)
    return path


@pytest.fixture
def classes(tmp_path):
    "cat/ 6 grey PNGs, dog/ 5 colour JPEGs (one in a sub-folder), bird/ 3 grey-with-alpha PNGs; also clutter"
    d = tmp_path / 'pets'
    for i in range(6): save(d / 'cat' / f'c{i}.png', 'L')
    for i in range(4): save(d / 'dog' / f'd{i}.jpg', 'RGB', (16, 11))
    save(d / 'dog' / 'puppies' / 'p0.JPEG', 'RGB', (11, 14))
    for i in range(3): save(d / 'bird' / f'b{i}.png', 'LA')
    save(d / '.ipynb_checkpoints' / 'x.png', 'L'); save(d / 'cat' / '.hidden.png', 'L')
    (d / 'notes.txt').write_text('not an image'); (d / 'empty_class').mkdir()
    return d


def test_class_subfolders_are_labels(classes):
    files, labels, names = folder_files(classes)
    assert names == ['bird', 'cat', 'dog']                       # sorted; hidden and image-less folders skipped
    assert labels.tolist() == [0] * 3 + [1] * 6 + [2] * 5
    assert {f.name for f in files if f.parent.name == 'puppies'} == {'p0.JPEG'}
    d = load_folder(classes, 8)
    assert isinstance(d, ImageData) and d.shape == (3, 8, 8)     # colour JPEGs among grey: 3 channels
    assert d.classes == names and torch.equal(d.labels, labels) and len(d) == 14
    # grey images become three equal planes, colour ones do not
    grey, colour = d.images[labels == 1], d.images[labels == 2]
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    assert not torch.equal(colour[:, 0], colour[:, 1])


def test_channels_follow_the_files(tmp_path):
    for i in range(3): save(tmp_path / 'g' / f'{i}.png', 'L'); save(tmp_path / 'g' / f'{i}.jpg', 'L')
    save(tmp_path / 'g' / 'a.png', 'LA'); save(tmp_path / 'g' / 'one.png', '1')
    d = load_folder(tmp_path / 'g', 8)
    assert d.shape == (1, 8, 8) and d.labels is None and d.classes is None
    assert load_folder(tmp_path / 'g', 8, channels=3).shape == (3, 8, 8)
    save(tmp_path / 'g' / 'rgba.png', 'RGBA')
    assert load_folder(tmp_path / 'g', 8).shape == (3, 8, 8)     # one colour file makes the folder colour
    assert load_folder(tmp_path / 'g', 8, channels=1).shape == (1, 8, 8)
    # the training entry point passes channels through
    assert load_image_data('folder', tmp_path / 'g', image_size=8, channels=1).shape == (1, 8, 8)


def test_resize_is_shrink_then_centre_crop(tmp_path):
    a = np.zeros((10, 20), np.uint8); a[:, 5:15] = 255                 # a 20x10 image, white in the middle half
    Image.fromarray(a).save(tmp_path / 'x.png')
    u = load_folder(tmp_path, 10).images[0, 0]
    assert u.shape == (10, 10) and (u == 255).all()                   # the crop keeps the centre 10 columns
    u = load_folder(tmp_path, 5).images[0, 0]
    assert u.shape == (5, 5) and (u[:, 1:4] == 255).all()             # shrunk to 10x5 first, then cropped


@pytest.mark.parametrize('case', ['empty', 'missing', 'only_text', 'mixed'])
def test_folders_that_hold_no_dataset(tmp_path, case):
    d = tmp_path / 'd'
    if case != 'missing': d.mkdir()
    if case == 'only_text': (d / 'a.txt').write_text('x')
    if case == 'mixed': save(d / 'top.png'); save(d / 'cls' / 'a.png')
    want = {'empty': (FileNotFoundError, 'no images'), 'missing': (FileNotFoundError, 'no such folder'),
            'only_text': (FileNotFoundError, 'no images'), 'mixed': (ValueError, 'images both directly in it (top.png)')}[case]
    with pytest.raises(want[0]) as e: load_image_data('folder', d, image_size=8)
    assert want[1] in str(e.value) and f'data_dir={d}' in str(e.value) and '\n' not in str(e.value)


def test_unreadable_file_is_named(tmp_path):
    for i in range(3): save(tmp_path / f'{i}.png')
    (tmp_path / 'broken.jpg').write_bytes(b'\xff\xd8 this is no JPEG')
    with pytest.raises(ValueError, match=r'cannot read .*broken\.jpg as an image') as e: load_folder(tmp_path, 8)
    assert '\n' not in str(e.value)


def test_too_small_is_named_with_sizes(tmp_path):
    save(tmp_path / 'big.png', size=(40, 40)); save(tmp_path / 'small.jpg', 'RGB', (30, 7))
    with pytest.raises(ValueError, match=r'small\.jpg is 30x7, smaller than image_size=8'): load_folder(tmp_path, 8)
    assert load_folder(tmp_path, 7).shape == (3, 7, 7)


def test_stream_matches_memory(classes):
    mem = load_folder(classes, 8)
    st = load_folder(classes, 8, max_memory_mb=0, workers=2)
    assert isinstance(st, FolderStream) and st.shape == mem.shape and st.classes == mem.classes
    assert torch.equal(st.labels, mem.labels)
    # in sequence (the workers read ahead), across epochs, then out of sequence (a resumed run), other seeds and sizes
    for args in [(s, 5, 1) for s in range(8)] + [(3, 5, 1), (0, 5, 1), (2, 3, 7), (100, 14, 0)]:
        assert torch.equal(st.batch(*args), mem.batch(*args)), args
    assert torch.equal(st.images_at(torch.arange(14)), mem.images)
    st.close()


def test_budget_decides(classes):
    "14 RGB images of 8x8 take 14*3*64 = 2688 bytes: in memory at that budget, streamed below it"
    mb = 14 * 3 * 64 / 2 ** 20
    assert isinstance(load_folder(classes, 8, max_memory_mb=mb), ImageData)
    assert isinstance(load_folder(classes, 8, max_memory_mb=mb * 0.99, workers=0), FolderStream)
    assert isinstance(load_image_data('folder', classes, image_size=8, max_memory_mb=mb * 0.99), FolderStream)


def test_stream_names_a_file_that_fails_to_decode(tmp_path):
    for i in range(4): save(tmp_path / f'{i}.png', size=(12, 12))
    buf = io.BytesIO(); Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(buf, format='PNG')
    (tmp_path / 'truncated.png').write_bytes(buf.getvalue()[:200])   # the header reads, the pixels do not
    st = load_folder(tmp_path, 8, max_memory_mb=0, workers=1)
    with pytest.raises(ValueError, match=r'cannot read .*truncated\.png as an image') as e:
        for s in range(5): st.batch(s, 5)
    assert '\n' not in str(e.value)
    st.close()


def test_training_on_a_stream_equals_training_in_memory(classes, tmp_path):
    "Two steps of a tiny model: the stream is a drop-in for ImageData in the Trainer"
    from ddpm_lit.train import Trainer, TrainConfig
    cfg = TrainConfig(dataset='folder', data_dir=str(classes), image_size=8, model='tiny', T=10, batch_size=4,
                      steps=2, device='cpu', log_every=1, ckpt_every=100)
    losses = []
    for name, data in [('mem', load_folder(classes, 8)), ('stream', load_folder(classes, 8, max_memory_mb=0, workers=1))]:
        tr = Trainer(cfg, tmp_path / name, data)
        losses.append([tr.train_step(tr.batch())[0].item() for _ in range(2)])
        if isinstance(data, FolderStream): data.close()
    assert losses[0] == losses[1]
