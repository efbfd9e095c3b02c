//! End-to-end tests of the `cdh` command line: the binary is run as a user would run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cdh_core::{Blocklist, IdentifierField, KeyGraph, Normalizer, Outcome, Region, Slot, resolve};

fn cdh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cdh"))
        .args(args)
        .env_remove("CDH_KEYS")
        .env_remove("CDH_REGION")
        .output()
        .expect("the cdh binary runs")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command that must fail, and checks nothing was written.
fn fails(args: &[&str], out: &Path) -> String {
    let o = cdh(args);
    assert!(
        !o.status.success(),
        "expected failure: {args:?}\n{}",
        stderr(&o)
    );
    assert!(!out.exists(), "nothing may be written on error");
    stderr(&o)
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_string_lossy().into_owned()
}

const HEADER: &str = "contact_id,channel,line_uid,display_mobile,display_email,customer_id,connect_id,display_name,gender,birthday,updated_at\n";

#[test]
fn unify_writes_assignments_and_golden_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = fixture("small.csv");
    let o = cdh(&[
        "unify",
        "--keys",
        "display_mobile,display_email",
        "--region",
        "TW",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let assignments = std::fs::read_to_string(out.join("assignments.csv")).unwrap();
    let profiles = std::fs::read_to_string(out.join("profiles.csv")).unwrap();
    insta::assert_snapshot!("small_assignments", assignments);
    insta::assert_snapshot!("small_profiles", profiles);
    let summary = stderr(&o);
    assert!(
        summary.contains("unified 5 contacts into 4 profiles (1 merges)"),
        "{summary}"
    );
    assert!(
        summary
            .contains("1 merges refused: they would give a profile two values of a unique field"),
        "c3's customer id M2 keeps it out of c1's profile (M1): {summary}"
    );
    assert!(
        summary.contains("2 invalid and 2 blocked values"),
        "{summary}"
    );
}

#[test]
fn preview_prints_what_would_merge_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("small.csv");
    let o = cdh(&[
        "unify",
        "--keys",
        "display_mobile,display_email",
        input.to_str().unwrap(),
        "--preview",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    insta::assert_snapshot!("small_preview", stdout(&o));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_custom_column_can_be_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = fixture("small.csv");
    let o = cdh(&[
        "unify",
        "--keys",
        "vip_no",
        "--unique-fields",
        "connect_id",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let assignments = std::fs::read_to_string(out.join("assignments.csv")).unwrap();
    assert!(
        assignments.contains("c3,c1"),
        "c1 and c3 share vip_no V1:\n{assignments}"
    );
    // By default customer_id is unique, and c1 (M1) and c3 (M2) are kept apart.
    let o = cdh(&[
        "unify",
        "--keys",
        "vip_no",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let assignments = std::fs::read_to_string(out.join("assignments.csv")).unwrap();
    assert!(
        assignments.contains("c3,c3"),
        "customer ids M1 and M2 refuse the merge:\n{assignments}"
    );
}

#[test]
fn exclusions_are_normalised_like_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(
        dir.path(),
        "in.csv",
        format!("{HEADER}a,sms,,02-2700-1234,,,,,,,\nb,sms,,+886 2 2700 1234,,,,,,,\nc,sms,,0912-345-678,,,,,,,\nd,sms,,+886912345678,,,,,,,\n").as_bytes(),
    );
    let out = dir.path().join("out");
    let o = cdh(&[
        "unify",
        "--keys",
        "display_mobile",
        &input,
        "--out",
        out.to_str().unwrap(),
        "--exclude",
        "display_mobile=(02) 2700-1234",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let assignments = std::fs::read_to_string(out.join("assignments.csv")).unwrap();
    assert!(
        assignments.contains("a,a\n") && assignments.contains("b,b\n"),
        "{assignments}"
    );
    assert!(assignments.contains("d,c\n"), "{assignments}");
    assert!(stderr(&o).contains("excluded 2"), "{}", stderr(&o));
}

#[test]
fn malformed_csv_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "too_many.csv",
            b"a,sms,,0912345678,,,,,,,\nb,sms,,0912345678,,,,,,,,extra\n",
            "line 3: the row has 12 fields but the header has 11",
        ),
        (
            "too_few.csv",
            b"a,sms,,0912345678\n",
            "line 2: the row has 4 fields but the header has 11",
        ),
        (
            "stray_quote.csv",
            b"a,sms,,0912345678,,,,5\" tv,,,\n",
            "line 2: bad quoting",
        ),
        (
            "unclosed.csv",
            b"a,sms,,0912345678,,,,,,,\nb,sms,,,,,,\"open,,,\nc,sms,,,,,,,,,\n",
            "line 3: a quoted field is never closed",
        ),
        (
            "latin1.csv",
            b"a,sms,,0912345678,,,,Jos\xe9,,,\n",
            "line 2: not valid UTF-8",
        ),
        (
            "no_id.csv",
            b" ,sms,,0912345678,,,,,,,\n",
            "line 2: contact_id is empty",
        ),
        (
            "repeated_id.csv",
            b"1,sms,,0912345678,,,,,,,\n2,sms,,0912345679,,,,,,,\n 1 ,sms,,0912345670,,,,,,,\n",
            "line 4: contact_id `1` is given again (first on line 2)",
        ),
        (
            "bad_time.csv",
            b"1,sms,,0912345678,,,,,,,2024-05-01T08:00:00Z\n2,sms,,0912345679,,,,,,,yesterday\n",
            "line 3, column 11 (updated_at): `yesterday` is not a time",
        ),
    ];
    for (name, body, expected) in cases {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(body);
        let input = write_file(dir.path(), name, &bytes);
        let err = fails(
            &[
                "unify",
                "--keys",
                "display_mobile",
                &input,
                "--out",
                out.to_str().unwrap(),
            ],
            &out,
        );
        assert!(
            err.contains(expected),
            "{name}: expected `{expected}` in:\n{err}"
        );
        assert!(
            err.contains(name),
            "{name}: the error names the file:\n{err}"
        );
    }
}

#[test]
fn a_closed_output_pipe_ends_the_preview_quietly() {
    let input = fixture("small.csv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdh"))
        .args(["unify", "--keys", "display_mobile", "--preview"])
        .arg(&input)
        .env_remove("CDH_KEYS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the cdh binary runs");
    // As `| head` does once it has its lines: the reader goes before the preview is written.
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("cdh ends");
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn bad_arguments_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let input = fixture("small.csv");
    let input = input.to_str().unwrap();
    let missing = dir.path().join("missing.csv");
    let err = fails(
        &[
            "unify",
            "--keys",
            "display_mobile",
            missing.to_str().unwrap(),
            "--out",
            o,
        ],
        &out,
    );
    assert!(
        err.contains("cannot read") && err.contains("missing.csv"),
        "{err}"
    );
    let err = fails(&["unify", "--keys", "phone", input, "--out", o], &out);
    assert!(err.contains("unknown identifier field `phone`"), "{err}");
    assert!(
        err.contains("line_uid, display_mobile, display_email, customer_id, connect_id, vip_no"),
        "{err}"
    );
    let err = fails(
        &[
            "unify",
            "--keys",
            "line_uid,display_mobile,display_email,customer_id",
            input,
            "--out",
            o,
        ],
        &out,
    );
    assert!(err.contains("at most 3 unify keys"), "{err}");
    let err = fails(
        &[
            "unify",
            "--keys",
            "display_email,display_email",
            input,
            "--out",
            o,
        ],
        &out,
    );
    assert!(err.contains("listed twice"), "{err}");
    let err = fails(
        &[
            "unify",
            "--keys",
            "display_email",
            "--region",
            "XX",
            input,
            "--out",
            o,
        ],
        &out,
    );
    assert!(err.contains("unknown phone region `XX`"), "{err}");
    let err = fails(
        &[
            "unify",
            "--keys",
            "display_email",
            "--exclude",
            "display_email",
            input,
            "--out",
            o,
        ],
        &out,
    );
    assert!(err.contains("FIELD=VALUE"), "{err}");
    // A preview writes nothing, so an output folder with it is a mistake, not ignored.
    let err = fails(
        &[
            "unify",
            "--keys",
            "display_email",
            "--preview",
            input,
            "--out",
            o,
        ],
        &out,
    );
    assert!(
        err.contains("--preview") && err.contains("cannot be used with") && err.contains("--out"),
        "{err}"
    );
    let no_id = write_file(dir.path(), "no_id_col.csv", b"id,display_email\n1,a@b.co\n");
    let err = fails(
        &["unify", "--keys", "display_email", &no_id, "--out", o],
        &out,
    );
    assert!(err.contains("no `contact_id` column"), "{err}");
    let err = fails(
        &[
            "unify",
            "--keys",
            "line_uid",
            &write_file(dir.path(), "e.csv", b"contact_id,display_email\n1,a@b.co\n"),
            "--out",
            o,
        ],
        &out,
    );
    assert!(err.contains("unify key `line_uid` has no column"), "{err}");
    let empty = write_file(dir.path(), "empty.csv", b"");
    let err = fails(
        &["unify", "--keys", "display_email", &empty, "--out", o],
        &out,
    );
    assert!(err.contains("the file is empty"), "{err}");
}

/// The parallel, sharded loader must give exactly the partition of the simple sequential
/// path (core normaliser, one-shard graph), whatever the number of threads.
#[test]
fn parallel_unify_equals_the_sequential_core_on_a_generated_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("gen.csv");
    let o = cdh(&["gen", "20000", input.to_str().unwrap(), "--seed", "7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let keys = ["line_uid", "display_mobile", "display_email"];
    let expected = sequential_partition(&input, &keys);
    for threads in ["1", "2", "3"] {
        let out = dir.path().join(format!("out{threads}"));
        let o = cdh(&[
            "unify",
            "--keys",
            &keys.join(","),
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--threads",
            threads,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let got = read_assignments(&out.join("assignments.csv"));
        assert_eq!(got.len(), expected.len());
        assert_eq!(got, expected, "threads={threads}");
    }
}

fn sequential_partition(input: &Path, keys: &[&str]) -> std::collections::BTreeMap<String, String> {
    let mut reader = csv::Reader::from_path(input).unwrap();
    let header = reader.headers().unwrap().clone();
    let fields: Vec<IdentifierField> = keys
        .iter()
        .map(|k| IdentifierField::parse(k, &[]).unwrap())
        .collect();
    let cols: Vec<usize> = keys
        .iter()
        .map(|k| header.iter().position(|h| h == *k).unwrap())
        .collect();
    // customer_id is unique by default: a merge that would give a profile two is refused.
    let customer_id = header.iter().position(|h| h == "customer_id");
    let mut slots: Vec<Slot> = fields
        .iter()
        .map(|f| Slot {
            field: f.clone(),
            merges: true,
            unique: false,
        })
        .collect();
    if customer_id.is_some() {
        slots.push(Slot {
            field: IdentifierField::CustomerId,
            merges: false,
            unique: true,
        });
    }
    let mut graph = KeyGraph::new(slots);
    let mut normalizer = Normalizer::new(Region::parse("TW").unwrap(), Blocklist::built_in());
    let mut ids = Vec::new();
    for row in reader.records() {
        let row = row.unwrap();
        let values: Vec<(u8, String)> = fields
            .iter()
            .zip(&cols)
            .chain(
                customer_id
                    .iter()
                    .map(|c| (&IdentifierField::CustomerId, c)),
            )
            .enumerate()
            .filter_map(|(s, (f, &c))| match normalizer.normalize(f, &row[c]) {
                Ok(v) => Some((s as u8, v)),
                Err(Outcome::Empty | Outcome::Invalid(_) | Outcome::Blocked(_)) => None,
                Err(Outcome::Valid) => unreachable!(),
            })
            .collect();
        graph.add_contact(0, values.iter().map(|(s, v)| (*s, v.as_str())));
        ids.push(row[0].to_owned());
    }
    let p = resolve(&graph, None);
    (0..ids.len())
        .map(|c| {
            (
                ids[c].clone(),
                ids[p.root(p.profile_of(c as u32)) as usize].clone(),
            )
        })
        .collect()
}

fn read_assignments(path: &Path) -> std::collections::BTreeMap<String, String> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_owned(), r[1].to_owned())
        })
        .collect()
}

#[test]
fn gen_is_deterministic_per_seed() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    let b = dir.path().join("b.csv");
    assert!(
        cdh(&["gen", "1000", a.to_str().unwrap(), "--seed", "3"])
            .status
            .success()
    );
    assert!(
        cdh(&["gen", "1000", b.to_str().unwrap(), "--seed", "3"])
            .status
            .success()
    );
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(std::fs::read_to_string(&a).unwrap().lines().count(), 1001);
}
