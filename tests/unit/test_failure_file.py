from container import training


def test_failure_file_is_cut_to_what_sagemaker_shows_and_written_once(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "BASE_DIR", tmp_path)
    training.write_failure("UserError: first" + "x" * 2000)
    training.write_failure("a later, less specific reason")
    text = (tmp_path / "output" / "failure").read_text()
    assert text.startswith("UserError: first") and len(text) == training.FAILURE_LIMIT == 1024
