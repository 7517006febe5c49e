use super::*;

#[test]
fn a_healthy_upstream_lets_everyone_connect() {
    let h = Health::default();
    assert_eq!(h.check(), Ok(Gate::Open));
    assert_eq!(h.check(), Ok(Gate::Open));
}

#[test]
fn while_down_callers_fail_fast_with_the_real_error_and_one_probe_retries() {
    let h = Health::default();
    h.failed("connection refused");
    assert_eq!(h.check(), Err("connection refused".to_string()));
    std::thread::sleep(FIRST_BACKOFF + Duration::from_millis(20));
    assert_eq!(
        h.check(),
        Ok(Gate::Probe),
        "after the backoff one caller probes"
    );
    assert_eq!(
        h.check(),
        Err("connection refused".to_string()),
        "the others still fail fast"
    );
    h.succeeded();
    assert_eq!(h.check(), Ok(Gate::Open));
    assert!(h.down_since().is_none());
}

#[test]
fn backoff_is_capped_so_recovery_is_noticed_within_a_second() {
    let h = Health::default();
    h.failed("refused");
    for _ in 0..10 {
        let mut st = h.state.lock().unwrap();
        st.as_mut().unwrap().retry_at = Instant::now();
        drop(st);
        let _ = h.check();
    }
    assert_eq!(
        h.state.lock().unwrap().as_ref().unwrap().backoff,
        MAX_BACKOFF
    );
}

#[test]
fn exhaustion_names_the_pool_the_limit_and_the_wait() {
    let e = AcquireError::Exhausted {
        pool: "sessions".into(),
        what: "dedicated connections (max_pinned)",
        limit: 16,
        waited: Duration::from_secs(5),
    };
    assert_eq!(
        e.to_string(),
        "pool 'sessions': all 16 dedicated connections (max_pinned) are in use; waited 5s (acquire_timeout)"
    );
}
