// Package metrics is mailhook's Prometheus instrumentation: it owns every
// metric name, its labels and buckets, the registry they live in and the
// /metrics handler.
//
// The pipeline's packages know nothing about Prometheus. They expose small
// hooks (inbound.Observer, dispatch.Config.OnAttempt, dispatch's Stats) and
// this package turns them into metrics; the store is measured by a
// decorator (InstrumentStore). Label values are always from fixed sets, so
// a hostile SMTP client cannot grow the number of series.
//
// It never changes the pipeline's behaviour: observers only count, the
// store decorator returns exactly what the store returned, and nothing here
// blocks or fails a session, a delivery or a store call.
//
// Metrics (all prefixed mailhook_):
//
//	build_info{version,goversion}                       gauge, always 1
//	smtp_sessions_active                                gauge
//	smtp_sessions_total{result}                         accepted | over_cap | shutting_down | untrusted
//	smtp_commands_total{verb,class}                     verb: EHLO … STARTTLS | other; class: 2xx | 4xx | 5xx
//	smtp_messages_total{result,reason}                  accepted | rejected{too_large,bare_newline,line_too_long,storage,refused} | aborted{timeout,disconnected,reset,quit,protocol}
//	smtp_received_bytes_total                           message data octets, every transfer
//	smtp_message_size_bytes                             histogram, accepted messages
//	store_operation_duration_seconds{op,result}         histogram; op: put | get | stat | delete | list | ping | move; result: ok | not_found | precondition | error
//	deliveries_total{outcome}                           delivered | failed (from dispatch.Stats) | retry (from OnAttempt)
//	delivery_attempts_total{class}                      2xx | 3xx | 4xx | 5xx | error
//	delivery_attempt_duration_seconds                   histogram, attempts that sent a request
//	queue_pending                                       gauge: deliveries scheduled by this process
//	deliveries_in_flight                                gauge
//	queue_oldest_pending_age_seconds                    gauge: age of the oldest pending message, 0 if none
//
// plus the Go runtime (go_*) and process (process_*) collectors.
package metrics
