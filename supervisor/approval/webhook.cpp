// SPDX-License-Identifier: Apache-2.0
#include "approval/webhook.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <uuid/uuid.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "cordon/log.h"
#include "creds/creds.h"
#include "creds/http.h"
#include "creds/secret_file.h"

namespace cordon::approval {
namespace {

struct CurlDeleter {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct MultiDeleter {
    void operator()(CURLM* m) const { curl_multi_cleanup(m); }
};
struct SlistDeleter {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct UrlDeleter {
    void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct CurlStringDeleter {
    void operator()(char* s) const { curl_free(s); }
};
using Curl = std::unique_ptr<CURL, CurlDeleter>;
using Multi = std::unique_ptr<CURLM, MultiDeleter>;
using Headers = std::unique_ptr<curl_slist, SlistDeleter>;
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

constexpr int kMaxAttempts = 10;
constexpr std::chrono::seconds kMaxFirstBackoff{60};
constexpr std::chrono::seconds kMaxTimeout{300};
// The longest wait between two attempts, however many doublings came before.
constexpr std::chrono::seconds kMaxBackoff{60};
// Drops kept for one report each while the worker is busy; past that they
// are only counted, so that a flood of events cannot grow memory.
constexpr size_t kMaxDropReports = 1024;

// One event on its way: serialised once, so that every attempt sends and
// signs the same bytes.
struct Delivery {
    std::string event;
    std::string id;
    std::string body;
};

// How one request ended.
struct Attempt {
    CURLcode rc = CURLE_OK;
    long status = 0;
    std::string detail;    // libcurl's error buffer
    bool stopped = false;  // cut short by the destructor
};

std::string new_delivery_id() {
    uuid_t raw;
    uuid_generate_random(raw);
    char text[37];
    uuid_unparse_lower(raw, text);
    return text;
}

// A token in the sense of RFC 9110 section 5.6.2, so that the name cannot
// end the header line it is sent in.
bool is_token(const std::string& s) {
    static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
    if (s.empty() || s.size() > 128) return false;
    for (unsigned char c : s)
        if (!std::isalnum(c) && kSpecials.find(static_cast<char>(c)) == std::string_view::npos)
            return false;
    return true;
}

std::string part(CURLU* u, CURLUPart which) {
    char* raw = nullptr;
    if (curl_url_get(u, which, &raw, 0) != CURLUE_OK) return {};
    CurlString owned(raw);
    return owned.get();
}

// The URL as errors show it: scheme, host and port only. Chat systems put
// the credential of an incoming webhook in its path or query (Slack,
// Discord, Teams), so the rest is never printed.
Result<std::string> shown_url(const std::string& url) {
    std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
    if (!u) return plain_error("approval webhook url: cannot start libcurl");
    if (curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK)
        return plain_error("approval webhook url: not a URL",
                           "write it as https://HOST[:PORT]/PATH");
    std::string scheme = part(u.get(), CURLUPART_SCHEME);
    if (scheme != "http" && scheme != "https")
        return plain_error("approval webhook url: scheme " + scheme + " is not http or https",
                           "write it as https://HOST[:PORT]/PATH");
    std::string shown = scheme + "://" + part(u.get(), CURLUPART_HOST);
    if (std::string port = part(u.get(), CURLUPART_PORT); !port.empty()) shown += ":" + port;
    std::string path = part(u.get(), CURLUPART_PATH);
    if ((!path.empty() && path != "/") || !part(u.get(), CURLUPART_QUERY).empty()) shown += "/...";
    return shown;
}

Status check_limits(const WebhookConfig& c) {
    if (c.attempts < 1 || c.attempts > kMaxAttempts)
        return plain_error("approval webhook attempts: " + std::to_string(c.attempts) +
                           " is not between 1 and " + std::to_string(kMaxAttempts));
    if (c.first_backoff.count() < 0 || c.first_backoff > kMaxFirstBackoff)
        return plain_error(
            "approval webhook first backoff: " + std::to_string(c.first_backoff.count()) +
            " ms is not between 0 and 60 s");
    if (c.timeout.count() < 1 || c.timeout > kMaxTimeout)
        return plain_error("approval webhook timeout: " + std::to_string(c.timeout.count()) +
                           " s is not between 1 and 300 s");
    return ok_status();
}

bool worth_retrying(const Attempt& a) {
    if (a.rc != CURLE_OK) return creds::transient(a.rc);
    return a.status >= 500 || a.status == 429;
}

bool delivered(const Attempt& a) {
    return a.rc == CURLE_OK && a.status >= 200 && a.status < 300;
}

std::string attempts_text(int n) {
    return std::to_string(n) + (n == 1 ? " attempt" : " attempts");
}

// What the last attempt met, with what to do where one can tell.
std::string cause(const Attempt& a) {
    if (a.rc == CURLE_OK && a.status >= 300 && a.status < 400)
        return "HTTP " + std::to_string(a.status) + " (redirects are not followed: configure " +
               "the URL it points to)";
    if (a.rc == CURLE_OK && (a.status == 401 || a.status == 403))
        return "HTTP " + std::to_string(a.status) +
               " (the receiver refused the request: check that it verifies " + kSignatureHeader +
               " with the key of the secret file)";
    if (a.rc == CURLE_OK) return "HTTP " + std::to_string(a.status);
    std::string what = curl_easy_strerror(a.rc);
    if (!a.detail.empty()) what += " (" + a.detail + ")";
    if (a.rc == CURLE_PEER_FAILED_VERIFICATION || a.rc == CURLE_SSL_CACERT_BADFILE)
        what +=
            " (if a private CA signed the receiver's certificate, name its PEM file as the "
            "webhook's CA bundle)";
    return what;
}

// The header lines of one delivery, the same on every attempt.
Headers request_headers(const creds::Secret& key, const Delivery& d) {
    const std::string lines[] = {
        "Content-Type: application/json",
        std::string(kSignatureHeader) + ": " + signature(key.reveal(), d.body),
        std::string(kEventHeader) + ": " + d.event,
        std::string(kDeliveryHeader) + ": " + d.id,
        // No "Expect: 100-continue" pause of a second before larger bodies.
        "Expect:",
    };
    Headers list;
    for (const auto& line : lines) {
        // On failure curl_slist_append returns null and leaves the list as it was.
        curl_slist* head = list.release();
        curl_slist* next = curl_slist_append(head, line.c_str());
        list.reset(next ? next : head);
        if (!next) return nullptr;  // never half the headers, the signature perhaps missing
    }
    return list;
}

size_t discard(char*, size_t size, size_t count, void*) {
    return size * count;
}

}  // namespace

struct Webhook::State {
    WebhookConfig config;
    std::string url;  // as errors show it (shown_url)
    creds::Secret key;
    ResultCallback on_result;
    Multi multi;  // kept for curl_multi_wakeup, which cuts a request short at stop

    std::mutex mu;
    std::condition_variable changed;  // an event queued, a delivery done, or stop
    std::deque<Delivery> queue;
    std::vector<DeliveryResult> drops;  // to report, at most kMaxDropReports
    size_t uncounted_drops = 0;         // past kMaxDropReports
    bool busy = false;                  // a delivery in flight, out of the queue
    std::atomic<bool> stop = false;     // set under mu
    std::thread worker;

    bool idle() const { return queue.empty() && drops.empty() && !busy; }
    void drop(const std::string& event, const std::string& why);
    void run();
    void report_drops(std::unique_lock<std::mutex>& lock);
    void abandon_queue(std::unique_lock<std::mutex>& lock);
    DeliveryResult deliver(const Delivery& d);
    Attempt post_once(const Delivery& d, curl_slist* headers);
    CURLcode transfer(CURL* c, bool& stopped);
    bool wait_unless_stopped(std::chrono::milliseconds d);
};

std::string signature(const std::string& key, const std::string& body) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len))
        return {};  // only when libcrypto cannot allocate: the receiver then refuses it
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "sha256=";
    for (unsigned i = 0; i < len; ++i) {
        out += kHex[mac[i] >> 4];
        out += kHex[mac[i] & 0xf];
    }
    return out;
}

nlohmann::json to_json(const DeliveryResult& r) {
    nlohmann::json fields = {{"webhookEvent", r.event},
                             {"delivery", r.delivery},
                             {"delivered", r.delivered},
                             {"attempts", r.attempts},
                             {"status", r.status}};
    if (!r.delivered) fields["error"] = r.error;
    return fields;
}

Result<std::unique_ptr<Webhook>> Webhook::start(WebhookConfig config, ResultCallback on_result) {
    auto url = shown_url(config.url);
    if (!url) return url.error();

    if (auto st = check_limits(config); !st) return st.error();

    if (!config.ca_bundle.empty())
        if (auto st = creds::check_trusted_file(config.ca_bundle, "approval webhook CA bundle");
            !st)
            return st.error();

    auto key = creds::read_secret_file(config.secret_file, "approval webhook secret");
    if (!key) return key.error();

    // Once, here rather than implicitly on the worker thread: before 7.84
    // curl_global_init was not thread-safe.
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return plain_error("approval webhook: cannot start libcurl");
    Multi multi(curl_multi_init());
    if (!multi) return plain_error("approval webhook: cannot start libcurl");

    auto state = std::make_unique<State>();
    state->config = std::move(config);
    state->url = std::move(*url);
    state->key = std::move(*key);
    state->on_result = std::move(on_result);
    state->multi = std::move(multi);
    state->worker = std::thread([s = state.get()] { s->run(); });
    return std::unique_ptr<Webhook>(new Webhook(std::move(state)));
}

Webhook::Webhook(std::unique_ptr<State> state) : state_(std::move(state)) {}

void Webhook::notify(const std::string& event, const nlohmann::json& body) {
    State& s = *state_;
    if (!is_token(event)) return s.drop(event, "the event name is not an HTTP token");
    Delivery d{event, new_delivery_id(),
               // Invalid UTF-8 in a string is replaced, not thrown about.
               body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
    bool queued = false;
    {
        std::lock_guard lock(s.mu);
        if (s.queue.size() < kMaxQueued) {
            s.queue.push_back(std::move(d));
            queued = true;
        }
    }
    if (!queued)
        return s.drop(event, std::to_string(kMaxQueued) +
                                 " events wait already (is the receiver slow or down?)");
    s.changed.notify_all();
}

Webhook::~Webhook() {
    State& s = *state_;
    {
        std::unique_lock lock(s.mu);
        s.changed.wait_for(lock, s.config.timeout, [&] { return s.idle(); });
        s.stop = true;
    }
    s.changed.notify_all();
    curl_multi_wakeup(s.multi.get());
    s.worker.join();
}

// Kept for the worker to report, so that on_result never runs on the
// caller's thread (which may hold a lock on_result takes).
void Webhook::State::drop(const std::string& event, const std::string& why) {
    {
        std::lock_guard lock(mu);
        if (drops.size() < kMaxDropReports)
            drops.push_back({event, new_delivery_id(), false, 0, 0,
                             "webhook " + url + ": event dropped, not sent: " + why});
        else
            ++uncounted_drops;
    }
    changed.notify_all();
}

void Webhook::State::run() {
    std::unique_lock lock(mu);
    for (;;) {
        report_drops(lock);
        if (stop) break;
        if (queue.empty()) {
            changed.wait(lock, [&] { return stop || !queue.empty() || !drops.empty(); });
            continue;
        }
        Delivery d = std::move(queue.front());
        queue.pop_front();
        busy = true;
        lock.unlock();
        on_result(deliver(d));
        lock.lock();
        busy = false;
        changed.notify_all();
    }
    abandon_queue(lock);
}

// Reports the drops kept so far, the lock released while on_result runs.
void Webhook::State::report_drops(std::unique_lock<std::mutex>& lock) {
    while (!drops.empty()) {
        std::vector<DeliveryResult> now;
        now.swap(drops);
        if (uncounted_drops > 0)
            now.back().error += " (and " + std::to_string(uncounted_drops) +
                                " more events dropped, not reported one by one)";
        uncounted_drops = 0;
        lock.unlock();
        for (const auto& r : now) on_result(r);
        lock.lock();
    }
    changed.notify_all();
}

// At stop: what still waits is reported as never sent.
void Webhook::State::abandon_queue(std::unique_lock<std::mutex>& lock) {
    std::deque<Delivery> left;
    left.swap(queue);
    lock.unlock();
    for (const auto& d : left)
        on_result({d.event, d.id, false, 0, 0,
                   "webhook " + url + ": not sent: the session ended before the queue drained (" +
                       std::to_string(config.timeout.count()) + " s)"});
}

DeliveryResult Webhook::State::deliver(const Delivery& d) {
    static auto logger = layer_logger("approval");
    DeliveryResult r;
    r.event = d.event;
    r.delivery = d.id;
    Headers headers = request_headers(key, d);
    if (!headers) {
        r.error = "webhook " + url + ": not sent: cannot allocate the request's headers";
        return r;
    }
    auto backoff = config.first_backoff;
    for (r.attempts = 1;; ++r.attempts) {
        Attempt a = post_once(d, headers.get());
        if (a.stopped) {
            r.error = "webhook " + url + ": stopped at session end during attempt " +
                      std::to_string(r.attempts);
            return r;
        }
        r.status = a.rc == CURLE_OK ? a.status : 0;
        if (delivered(a)) {
            r.delivered = true;
            return r;
        }
        std::string what = "webhook " + url + ": " + cause(a);
        if (!worth_retrying(a)) {
            r.error = what + ", not retried";
            return r;
        }
        if (r.attempts == config.attempts) {
            r.error = what + " after " + attempts_text(r.attempts);
            return r;
        }
        logger->debug("{}, delivery {}: trying again in {} ms", what, d.id, backoff.count());
        if (!wait_unless_stopped(backoff)) {
            r.error = what + ", then stopped at session end after " + attempts_text(r.attempts);
            return r;
        }
        backoff = std::min(backoff * 2, std::chrono::milliseconds(kMaxBackoff));
    }
}

// One request, run through the multi handle so that the destructor can
// cut it short with curl_multi_wakeup().
Attempt Webhook::State::post_once(const Delivery& d, curl_slist* headers) {
    Attempt a;
    Curl curl(curl_easy_init());
    if (!curl) {
        a.rc = CURLE_OUT_OF_MEMORY;
        return a;
    }
    CURL* c = curl.get();
    char detail[CURL_ERROR_SIZE] = "";
    long timeout_ms = static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(config.timeout).count());
    curl_easy_setopt(c, CURLOPT_URL, config.url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, d.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(d.body.size()));
    if (!config.ca_bundle.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, config.ca_bundle.c_str());
    a.rc = transfer(c, a.stopped);
    a.detail = detail;
    if (a.rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
    return a;
}

CURLcode Webhook::State::transfer(CURL* c, bool& stopped) {
    CURLM* m = multi.get();
    if (curl_multi_add_handle(m, c) != CURLM_OK) return CURLE_FAILED_INIT;
    CURLcode rc = CURLE_FAILED_INIT;
    for (bool done = false; !done;) {
        if (stop) {
            stopped = true;
            rc = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        int running = 0;
        if (curl_multi_perform(m, &running) != CURLM_OK) break;
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(m, &left))
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == c) {
                rc = msg->data.result;
                done = true;
            }
        // Returns on activity, on curl's own timers, or on the destructor's wakeup.
        if (!done && curl_multi_poll(m, nullptr, 0, 1000, nullptr) != CURLM_OK) break;
    }
    curl_multi_remove_handle(m, c);
    return rc;
}

// False when the webhook stopped during the wait.
bool Webhook::State::wait_unless_stopped(std::chrono::milliseconds d) {
    std::unique_lock lock(mu);
    return !changed.wait_for(lock, d, [&] { return stop.load(); });
}

}  // namespace cordon::approval
