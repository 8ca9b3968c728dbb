"""train / evaluate / adapt report bad input as a clear message and exit code 2."""

from __future__ import annotations

from jixiaoan.cli import main


def test_evaluate_with_too_few_files_for_a_split_is_a_clear_error(data_dir, tmp_path, capsys):
    csv = tmp_path / "one.csv"
    pcap = data_dir / "zeek/rfb/vnc-scanner.pcap"
    csv.write_text(f"pcap,label,attack,hosts\n{pcap},malicious,port-scan,192.168.0.11\n")
    rc = main(["evaluate", "--labels", str(csv), "--methods", "classic", "--fractions", "0.1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "needs files on both sides" in err and "--model" in err


def test_bad_labels_and_bad_options_are_clear_errors(tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_text("pcap,label\nx.pcap,benign\n")
    assert main(["train", "--labels", str(csv), "--out", str(tmp_path / "m")]) == 2
    assert "missing column" in capsys.readouterr().err
    assert main(["evaluate", "--labels", str(csv), "--fractions", "ten"]) == 2
    assert "--fractions" in capsys.readouterr().err


def test_adapt_with_a_missing_model_is_a_clear_error(data_dir, tmp_path, capsys):
    rc = main(["adapt", "--model", str(tmp_path / "nope"), "--capture",
               str(data_dir / "zeek/wikipedia.pcap"), "--out", str(tmp_path / "site")])
    assert rc == 2
    assert "jixiaoan:" in capsys.readouterr().err


def test_adapt_until_without_a_model_is_a_clear_error(data_dir, capsys):
    rc = main(["evaluate", "--labels", str(data_dir / "labels.csv"), "--adapt-until", "60"])
    assert rc == 2
    assert "--adapt-until needs --model" in capsys.readouterr().err


def test_bad_seed_lists_are_clear_errors(data_dir, tmp_path, capsys):
    labels = str(data_dir / "labels.csv")
    assert main(["evaluate", "--labels", labels, "--seeds", "3-1"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["evaluate", "--labels", labels, "--seeds", "0-2", "--model", str(tmp_path)]) == 2
    assert "--model scores a trained model" in capsys.readouterr().err
