// SPDX-License-Identifier: Apache-2.0
// The approval webhook: when a session asks a human for a high-risk tool,
// Cordon POSTs the request as JSON to a configured URL so that a chat or
// ticket system can show it. Each body is signed with HMAC-SHA256 under a
// key kept in a protected secret file, in the form GitHub's webhooks use,
// so that the receiver can tell Cordon's requests from anyone else's.
// Deliveries run on a thread of their own with bounded retries: notify()
// never blocks the session, and the destructor never waits past a bound.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cordon/result.h"

namespace cordon::approval {

struct WebhookConfig {
    // http:// or https://; https recommended, as over http anyone on the
    // way reads the request (the signature only proves who sent it).
    std::string url;
    // The HMAC key: the file's contents, trailing newlines removed; a
    // protected file (creds/secret_file.h rules).
    std::string secret_file;
    std::string ca_bundle;  // "": the system's CAs
    int attempts = 5;       // in all, the first included; 1 to 10
    // Before the second attempt; doubled for each next one, up to a minute.
    std::chrono::milliseconds first_backoff{500};
    // One attempt's bound, connection included, 1 to 300 s; also how long the
    // destructor waits for the queue to drain.
    std::chrono::seconds timeout{10};
};

// The outcome of one delivery, for the audit events approval.notify and
// approval.notify.error.
struct DeliveryResult {
    std::string event;     // the X-Cordon-Event sent
    std::string delivery;  // the X-Cordon-Delivery sent, a UUID
    bool delivered = false;
    int attempts = 0;   // requests made; 0 when the event was dropped before any
    long status = 0;    // the last HTTP status, 0 when no answer came
    std::string error;  // "" when delivered; else what failed, never the key
};

// The fields of the audit events approval.notify and approval.notify.error:
// webhookEvent, delivery, delivered, attempts, status, and error only when
// not delivered. The event's name goes under webhookEvent, not event, which
// audit::AuditLog::emit writes first and would otherwise be overwritten.
nlohmann::json to_json(const DeliveryResult& r);

// Called on the webhook's worker thread, once per delivery, never two at
// once. It must not throw nor call back into the Webhook.
using ResultCallback = std::function<void(const DeliveryResult&)>;

inline constexpr const char* kSignatureHeader = "X-Cordon-Signature-256";
inline constexpr const char* kEventHeader = "X-Cordon-Event";
inline constexpr const char* kDeliveryHeader = "X-Cordon-Delivery";

// The value of kSignatureHeader for `body`: "sha256=" and the lowercase hex
// HMAC-SHA256 (RFC 2104, FIPS 180-4) of the body's bytes under `key`.
std::string signature(const std::string& key, const std::string& body);

class Webhook {
  public:
    // Events waiting for the worker at most; more are dropped (and reported).
    static constexpr size_t kMaxQueued = 64;

    // Checks the configuration and reads the secret once. An error names the
    // setting or file and why, never the secret's value.
    static Result<std::unique_ptr<Webhook>> start(WebhookConfig config, ResultCallback on_result);

    // Queues one event and returns at once. The worker POSTs the body with
    // Content-Type: application/json, the signature, kEventHeader: `event`
    // and kDeliveryHeader: an id of its own, the same on every retry. 2xx is
    // delivered; 5xx, 429 and network failures are retried after the
    // backoff, up to `attempts`; any other answer is final, and redirects
    // are not followed. TLS certificate failures are not retried either: the
    // next attempt would meet the same certificate. A full queue or an event
    // name that is no HTTP token drops the event, reported as failed with 0
    // attempts once the worker is free (never on the caller's thread).
    void notify(const std::string& event, const nlohmann::json& body);

    // Waits up to config.timeout for the queue to drain, then cuts the
    // request in flight short, reports it and what still waits as failed,
    // and stops the worker.
    ~Webhook();

    Webhook(const Webhook&) = delete;
    Webhook& operator=(const Webhook&) = delete;

  private:
    struct State;  // the worker's, shared with notify() (webhook.cpp)
    explicit Webhook(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

}  // namespace cordon::approval
