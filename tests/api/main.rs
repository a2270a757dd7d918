//! One integration-test binary: the real application on port 0, against a fresh SQLite file and
//! a fresh PostgreSQL database per test. PostgreSQL tests run when `TEST_DATABASE_URL` is set
//! (CI always sets it) and say they skipped otherwise.

mod helpers;

mod alerts;
mod bad_input;
mod bad_input_volume;
mod calls;
mod carrier_credentials;
mod changes;
mod cli;
mod dashboard;
mod demo;
mod dni;
mod dni_edges;
mod erasure;
mod exports;
mod faults;
mod faults_under_load;
mod fleet;
mod ga4;
mod health;
mod hostile_numbers;
mod hostile_visits;
mod instances;
mod keys;
mod live;
mod openapi;
mod outbound;
mod outcomes;
mod pools;
mod properties;
mod reports;
mod shared_work;
mod simulate;
mod snippet;
mod storage_story;
mod telephony;
mod tenancy;
mod webhooks;
