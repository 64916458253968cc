//! The same image API on S3-compatible storage: a real S3-protocol server (moto's
//! `moto_server`, from PyPI) started by the test. CI installs it; on a machine without it the
//! test says so and passes, unless `CI` is set, where a missing server is a failure.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use medlabel::auth::Role;

use crate::fixtures;
use crate::helpers::TestApp;

struct S3Server(Child);

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_s3() -> Option<(S3Server, String)> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("moto_server not found (pip install 'moto[server]'): S3 round trip not run");
            return None;
        }
        Err(e) => panic!("CI must provide moto_server: {e}"),
    };
    let server = S3Server(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "moto_server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((server, format!("http://127.0.0.1:{port}")))
}

/// Noise compresses badly, so this PNG is as large as its pixels: several S3 parts.
fn large_png() -> Vec<u8> {
    let (width, height) = (1600u32, 1400u32);
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_compression(png::Compression::Fastest);
    let mut writer = encoder.write_header().unwrap();
    let mut state = 0x2545F4914F6CDD1Du64;
    let pixels: Vec<u8> = (0..width * height * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    writer.write_image_data(&pixels).unwrap();
    drop(writer);
    out
}

#[actix_web::test]
async fn images_round_trip_through_an_s3_protocol_server() {
    let Some((_server, endpoint)) = start_s3() else {
        return;
    };
    let bucket = format!("medlabel-{}", uuid::Uuid::now_v7().simple());
    let created = awc::Client::default()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "bucket creation: {}",
        created.status()
    );
    // Only this test reads the AWS_* variables (every other test uses memory://).
    std::env::set_var("AWS_ACCESS_KEY_ID", "medlabel-test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "medlabel-test-secret");
    std::env::set_var("AWS_DEFAULT_REGION", "us-east-1");
    std::env::set_var("AWS_ENDPOINT", &endpoint);

    let url = format!("s3://{bucket}/scans");
    let app = TestApp::spawn_with(&[("STORAGE_URL", url.as_str())]).await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let health = doctor.get("/health").await;
    assert_eq!(health.body["storage"], "ok");

    for bytes in [fixtures::png(12, 9), large_png(), fixtures::dicom(8, 8)] {
        let res = doctor.upload(&bytes, "s3.bin", None).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        let id = res.body["id"].as_str().unwrap();
        let file = doctor.get(&format!("/api/v1/images/{id}/file")).await;
        assert_eq!(file.status, StatusCode::OK);
        assert_eq!(file.bytes.len(), bytes.len());
        assert!(
            file.bytes[..] == bytes[..],
            "bytes differ after the S3 round trip"
        );
        let part = doctor
            .send(
                actix_web::http::Method::GET,
                &format!("/api/v1/images/{id}/file"),
                None,
                &[("range", "bytes=10-49")],
            )
            .await;
        assert_eq!(&part.bytes[..], &bytes[10..50]);
    }
    let researcher = app.token_client(&[Role::Researcher]).await;
    let dicom = doctor
        .upload(&fixtures::dicom(8, 8), "x.dcm", None)
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let copy = researcher
        .get(&format!("/api/v1/images/{dicom}/file"))
        .await;
    assert!(!fixtures::contains(&copy.bytes, fixtures::CANARY));

    let before = app.stored_objects().await.len();
    doctor.upload(b"<svg/> not an image at all, long enough to be sniffed properly............................................................", "x.svg", None).await.problem(415);
    let mut truncated = large_png();
    truncated.truncate(truncated.len() - 100);
    doctor
        .upload(&truncated, "cut.png", None)
        .await
        .problem(422);
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.stored_objects().await.len(),
        before,
        "failed uploads leave no object on S3"
    );
    assert!(app
        .stored_objects()
        .await
        .iter()
        .all(|k| k.starts_with("images/") || k.starts_with("deidentified/")));
}
