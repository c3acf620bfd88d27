import numpy as np
import pytest

from contract.sampling import any_classes, draw, probabilities, sample_codes


def test_temperature_sharpens_and_top_k_truncates_row_by_row() -> None:
    logits = np.log(np.tile([[0.5, 0.3, 0.15, 0.05]], (4, 1)))
    probs = probabilities(logits, np.array([1.0, 0.5, 1.0, 1.0]), np.array([0, 0, 2, 4]))
    assert np.allclose(probs[[0, 3]], [0.5, 0.3, 0.15, 0.05])  # top_k 0 and top_k = K keep every code
    assert probs[1, 0] > 0.5 and np.isclose(probs[1].sum(), 1)
    assert np.allclose(probs[2], [0.625, 0.375, 0, 0])


def test_inverse_cdf_draws_follow_the_probabilities() -> None:
    streams = [np.random.default_rng(i) for i in range(4000)]
    probs = np.tile([[0.1, 0.6, 0.3]], (4000, 1))
    counts = np.bincount(draw(probs, streams), minlength=3) / 4000
    assert np.allclose(counts, [0.1, 0.6, 0.3], atol=0.03)


def bigram_prior(codes: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """A toy autoregressive prior: each code prefers (previous code in raster order + 1) mod 5."""
    n, h, w = codes.shape
    previous = np.roll(codes.reshape(n, -1), 1, axis=1).reshape(n, h, w)
    logits = np.full((n, 5, h, w), -3.0)
    np.put_along_axis(logits, ((previous + 1) % 5)[:, None], 3.0, axis=1)
    return logits


def test_sampler_uses_the_prior_in_raster_order() -> None:
    codes = sample_codes(bigram_prior, np.zeros((2, 3, 3), np.int64), np.ones((2, 3, 3), bool), seed=0, top_k=1)
    assert codes[0].ravel().tolist() == [1, 2, 3, 4, 0, 1, 2, 3, 4]  # greedy: each follows its predecessor


@pytest.mark.parametrize("n", [1, 3, 8])
def test_each_sample_depends_only_on_its_own_seed(n: int) -> None:
    start, mask = np.zeros((n, 3, 3), np.int64), np.ones((n, 3, 3), bool)
    together = sample_codes(bigram_prior, start, mask, seed=10)
    alone = [sample_codes(bigram_prior, start[:1], mask[:1], seed=10 + i)[0] for i in range(n)]
    assert np.array_equal(together, np.stack(alone))


def test_rows_merged_from_several_requests_draw_as_each_request_alone() -> None:
    start, mask = np.zeros((5, 3, 3), np.int64), np.ones((5, 3, 3), bool)
    first = sample_codes(bigram_prior, start[:2], mask[:2], seed=5, temperature=2.0, top_k=2)
    second = sample_codes(bigram_prior, start[:3], mask[:3], seed=100)
    merged = sample_codes(
        bigram_prior,
        start,
        mask,
        seed=np.array([5, 6, 100, 101, 102]),
        temperature=np.array([2.0, 2.0, 1.0, 1.0, 1.0]),
        top_k=np.array([2, 2, 0, 0, 0]),
    )
    assert np.array_equal(merged, np.concatenate([first, second]))


def labelled_prior(codes: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """A toy prior over 4 codes whose logits depend on the label (3 = "no label") and on the codes drawn so far."""
    table = np.array([[2.0, 0.0, -1.0, 0.5], [0.0, 1.5, 0.5, -2.0], [-1.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    n, h, w = codes.shape
    logits = table[labels][:, :, None, None] + 0.3 * codes.reshape(n, -1).sum(axis=1)[:, None, None, None]
    return np.broadcast_to(logits, (n, 4, h, w)).copy()


def test_guidance_draws_from_the_guided_logits_with_each_rows_own_stream() -> None:
    labels = np.array([0, 1, 3, 2, 0])  # row 2 has no label: nothing to guide
    weights = np.array([2.0, 0.5, 2.0, 0.0, 1.0])
    start, mask = np.zeros((5, 3, 3), np.int64), np.ones((5, 3, 3), bool)
    mask[4, 0] = False  # a completion row: its first row stays as given

    def guided_logits(codes: np.ndarray, given: np.ndarray | None) -> np.ndarray:
        w = np.where(labels == 3, 0.0, weights)[:, None, None, None]
        return (1 + w) * labelled_prior(codes, given) - w * labelled_prior(codes, np.full_like(given, 3))

    guided = sample_codes(labelled_prior, start, mask, seed=7, labels=labels, guidance=weights, no_label=3)
    expected = sample_codes(guided_logits, start, mask, seed=7, labels=labels)
    assert np.array_equal(guided, expected)
    assert not np.array_equal(guided, sample_codes(labelled_prior, start, mask, seed=7, labels=labels))
    with pytest.raises(ValueError, match="guidance needs labels"):
        sample_codes(labelled_prior, start, mask, seed=7, guidance=1.0)


def test_classes_drawn_for_unlabelled_samples_follow_the_chances_given_else_are_uniform() -> None:
    seeds = np.arange(20_000)
    uniform = any_classes(seeds, 4)
    # Uniform draws stay what packages without chances have always drawn: the integers of each seed's class stream.
    assert list(uniform[:50]) == [np.random.default_rng([int(s), 1]).integers(4) for s in seeds[:50]]
    chances = [0.5, 0.0, 0.3, 0.2]
    weighted = any_classes(seeds, 4, chances)
    shares = np.bincount(weighted, minlength=4) / len(seeds)
    assert shares[1] == 0  # a class of no chance is never drawn
    assert np.abs(shares - chances).max() < 0.015
    assert (any_classes(seeds[7:9], 4, chances) == weighted[7:9]).all()  # each sample's class is its own seed's


def test_stratified_classes_hold_every_class_once_per_block_of_seeds_in_an_order_of_the_block() -> None:
    seeds = np.arange(100_000, 105_000)
    blocks = any_classes(seeds, 10, stratified=True).reshape(-1, 10)
    assert (np.sort(blocks, axis=1) == np.arange(10)).all()  # 500 of each class over these 5,000 seeds
    assert len({tuple(block) for block in blocks}) > 400  # each block in an order of its own, not seed mod 10
    assert (any_classes(seeds[13:16], 10, stratified=True) == blocks.ravel()[13:16]).all()  # a seed's own class
    shifted = any_classes(np.arange(100_005, 105_005), 10, stratified=True)  # blocks are fixed by the seeds
    assert np.abs(np.bincount(shifted, minlength=10) - 500).max() <= 1
    chances = [0.5, 0.0, 0.3, 0.2]
    stratified = np.bincount(any_classes(np.arange(4000), 4, chances, stratified=True), minlength=4) / 4000
    independent = np.bincount(any_classes(np.arange(4000), 4, chances), minlength=4) / 4000
    assert stratified[1] == 0 and np.abs(stratified - chances).max() < 0.01
    assert np.abs(stratified - chances).sum() < np.abs(independent - chances).sum()
