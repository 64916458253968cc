//! `GET /metrics`: Prometheus text for operators, behind its own token, parsed as a scraper
//! would parse it (`prometheus-parse`).

use actix_web::http::{Method, StatusCode};
use medlabel::auth::Role;

use crate::helpers::TestApp;

type Samples = Vec<(String, std::collections::HashMap<String, String>, f64)>;

const TOKEN: &str = "scrape-token-0123456789";

/// The samples of one scrape: (sample name, labels, value); a histogram `h` gives `h_bucket`,
/// `h_sum` and `h_count` samples.
async fn scrape(app: &TestApp) -> Samples {
    let client = app.anonymous();
    let auth = format!("Bearer {TOKEN}");
    let res = client
        .send(
            Method::GET,
            "/metrics",
            None,
            &[("authorization", auth.as_str())],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert!(res
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    // The format ignores empty lines (the exporter separates families with one); this
    // parser does not accept them, so they are dropped first.
    let text: String = res
        .text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let (rest, families) =
        nom_openmetrics::parser::prometheus(&text).expect("exposition format parses");
    assert!(rest.trim().is_empty(), "unparsed: {rest:.200}");
    families
        .iter()
        .flat_map(|family| family.samples.iter())
        .map(|sample| {
            let labels = sample
                .labels()
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            (sample.name().to_string(), labels, sample.number())
        })
        .collect()
}

fn value(samples: &Samples, metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(name, l, _)| {
            name == metric
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[actix_web::test]
async fn metrics_need_their_token_and_count_requests_audit_pool_and_bytes() {
    // Off without a token.
    let plain = TestApp::spawn().await;
    assert_eq!(
        plain.anonymous().get("/metrics").await.status,
        StatusCode::NOT_FOUND
    );

    let app = TestApp::spawn_with(&[("MEDLABEL_METRICS_TOKEN", TOKEN)]).await;
    let anonymous = app.anonymous();
    assert_eq!(
        anonymous.get("/metrics").await.status,
        StatusCode::UNAUTHORIZED
    );
    let wrong = anonymous
        .send(
            Method::GET,
            "/metrics",
            None,
            &[("authorization", "Bearer scrape-token-wrong!!")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    // A user's API token is no metrics token.
    let doctor = app.token_client(&[Role::Doctor]).await;
    assert_eq!(
        doctor.get("/metrics").await.status,
        StatusCode::UNAUTHORIZED
    );

    let before = scrape(&app).await;
    for _ in 0..3 {
        assert_eq!(doctor.get("/api/v1/auth/me").await.status, StatusCode::OK);
    }
    let image = doctor.upload_png().await;
    let id = image["id"].as_str().unwrap();
    let file = doctor.get(&format!("/api/v1/images/{id}/file")).await;
    assert_eq!(file.status, StatusCode::OK);
    // A researcher's download of a DICOM file makes its de-identified copy.
    let ct = doctor
        .upload(&crate::fixtures::dicom(4, 4), "ct.dcm", None)
        .await;
    assert_eq!(ct.status, StatusCode::CREATED, "{}", ct.text);
    let researcher = app.token_client(&[Role::Researcher]).await;
    let copy = researcher
        .get(&format!(
            "/api/v1/images/{}/file",
            ct.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(copy.status, StatusCode::OK);
    doctor.get("/no/such/path/123").await;
    // Invented methods are all `other`.
    for method in ["X0001", "X0002"] {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        doctor.send(m, "/api/v1/auth/me", None, &[]).await;
    }
    let after = scrape(&app).await;

    let me = [
        ("method", "GET"),
        ("route", "/api/v1/auth/me"),
        ("status", "200"),
    ];
    assert!(
        value(&after, "http_requests_total", &me) - value(&before, "http_requests_total", &me)
            >= 3.0
    );
    assert!(
        value(&after, "http_request_duration_seconds_count", &me) >= 3.0,
        "histogram count"
    );
    let file_route = [("route", "/api/v1/images/{id}/file")];
    assert!(value(&after, "http_requests_total", &file_route) >= 2.0);
    // Raw paths never become labels.
    assert!(after.iter().all(|(_, l, _)| !l
        .get("route")
        .is_some_and(|r| r.contains(id) || r.contains("123"))));
    assert!(value(&after, "http_requests_total", &[("route", "unmatched")]) >= 1.0);
    assert!(value(&after, "http_requests_total", &[("method", "other")]) >= 2.0);
    assert!(after
        .iter()
        .all(|(_, l, _)| !l.get("method").is_some_and(|m| m.starts_with('X'))));

    let size = image["size_bytes"].as_f64().unwrap();
    assert!(
        value(&after, "medlabel_upload_bytes_total", &[])
            - value(&before, "medlabel_upload_bytes_total", &[])
            >= size
    );
    assert!(
        value(&after, "medlabel_download_bytes_total", &[])
            - value(&before, "medlabel_download_bytes_total", &[])
            >= size
    );
    assert!(value(&after, "medlabel_audit_events_total", &[]) >= 6.0);
    assert!(value(&after, "medlabel_audit_commits_total", &[]) >= 1.0);
    assert!(value(&after, "medlabel_audit_events_per_commit_count", &[]) >= 1.0);
    for gauge in [
        "medlabel_audit_queue_depth",
        "medlabel_db_connections_in_use",
        "medlabel_db_connections_idle",
        "medlabel_db_requests_waiting",
    ] {
        assert!(after.iter().any(|(name, _, _)| name == gauge), "no {gauge}");
    }
    assert!(
        value(&after, "medlabel_deidentified_copies_total", &[])
            - value(&before, "medlabel_deidentified_copies_total", &[])
            >= 1.0
    );
}
