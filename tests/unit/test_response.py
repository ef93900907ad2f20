import pytest

from ser_serve.errors import AudioTooLong, UnsupportedMediaType, error_response
from ser_serve.response import schema_problems, to_response

LABELS = {0: "angry", 1: "happy", 2: "sad"}


def test_response_lists_every_label_sorted_with_dominant_first():
    response = to_response([0.2, 0.7, 0.1], LABELS)
    assert [r["label"] for r in response["results"]] == ["happy", "angry", "sad"]
    assert [r["score"] for r in response["results"]] == pytest.approx([0.7, 0.2, 0.1])
    assert response["dominant"] == response["results"][0]
    assert all(isinstance(r["score"], float) for r in response["results"])


def test_ties_keep_label_id_order():
    response = to_response([0.25, 0.5, 0.25], LABELS)
    assert [r["label"] for r in response["results"]] == ["happy", "angry", "sad"]


def test_score_count_must_match_labels():
    with pytest.raises(ValueError, match="2 scores for 3 labels"):
        to_response([0.5, 0.5], LABELS)


def test_typed_errors_map_to_their_status_and_json_body():
    status, phrase, body = error_response(AudioTooLong("too long"))
    assert (status, phrase) == (413, "Request Entity Too Large")
    assert body == {"error": {"code": "audio_too_long", "message": "too long"}}
    assert error_response(UnsupportedMediaType("x"))[0] == 415


def test_unexpected_errors_become_500_without_leaking_internals():
    status, _, body = error_response(KeyError("secret internal detail"))
    assert status == 500
    assert "secret" not in body["error"]["message"]


def test_multi_label_scores_need_not_sum_to_one_but_must_be_sorted_and_bounded():
    body = to_response([0.9, 0.8, 0.05], LABELS)
    assert schema_problems(body, list(LABELS.values()), multi_label=True) == []
    assert schema_problems(body, list(LABELS.values())) == ["scores sum to 1.750000, not 1"]
    unsorted = {"results": body["results"][::-1], "dominant": body["results"][-1]}
    assert "results are not sorted by score, highest first" in schema_problems(unsorted, multi_label=True)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_scores_become_a_typed_500_not_invalid_json(bad):
    from ser_serve.errors import NonFiniteScores

    with pytest.raises(NonFiniteScores) as caught:
        to_response([0.5, bad], {0: "happy", 1: "sad"})
    status, _, body = error_response(caught.value)
    assert status == 500 and body["error"]["code"] == "non_finite_scores"
