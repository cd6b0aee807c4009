// SPDX-License-Identifier: Apache-2.0
#include "approval/broker.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "approval/book.h"
#include "audit/audit.h"
#include "audit/rate_limit.h"
#include "cordon/fd.h"
#include "cordon/log.h"
#include "daemon/peer.h"
#include "daemon/protocol.h"

namespace cordon::approval {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::shared_ptr<spdlog::logger> log() {
    static auto logger = layer_logger("approval");
    return logger;
}

// Connections each API keeps open at once. The agent's beyond it are closed
// as they come; an approver's new one closes the oldest of its kind instead
// (see accept_approver), so that silent connections cannot shut approvers out.
constexpr size_t kMaxConnections = 16;
// How long an agent's ask waits when it names no timeout.
constexpr std::chrono::seconds kDefaultAskTimeout{300};
// The agent's reason, at most this long in the record.
constexpr size_t kMaxReason = 500;
// The largest number of uses one grant may give.
constexpr uint64_t kMaxUses = 1000000;

// Code points that act on an approver's terminal or hide text: C0 and C1
// controls (ESC, CSI), DEL, the soft hyphen, zero-width characters,
// bidirectional overrides and isolates, line and paragraph separators.
bool deceptive(char32_t c) {
    return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0xad || (c >= 0x200b && c <= 0x200f) ||
           (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x2069) || c == 0xfeff;
}

// The agent's text as approvers may see it: at most `max` bytes of whole
// characters, each deceptive one as '?'. The text is UTF-8 (a JSON
// string); a byte that starts no character is a '?' too.
std::string clipped(const std::string& text, size_t max) {
    std::string out;
    for (size_t i = 0; i < text.size();) {
        auto lead = static_cast<unsigned char>(text[i]);
        size_t len = lead < 0x80         ? 1
                     : (lead >> 5) == 6  ? 2
                     : (lead >> 4) == 14 ? 3
                     : (lead >> 3) == 30 ? 4
                                         : 0;
        if (len == 0 || i + len > text.size()) {
            out += '?';
            ++i;
            continue;
        }
        char32_t c = len == 1 ? lead : lead & (0x7f >> len);
        for (size_t k = 1; k < len; ++k)
            c = (c << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3f);
        size_t width = deceptive(c) ? 1 : len;
        if (out.size() + width > max) return out + "...";
        if (deceptive(c))
            out += '?';
        else
            out.append(text, i, len);
        i += len;
    }
    return out;
}

Result<UniqueFd> listen_unix(const std::string& path, int type, mode_t mode) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return plain_error("socket path too long: " + path, "choose a shorter directory");
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return errno_error("cannot create a socket for " + path);
    ::unlink(path.c_str());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return errno_error("cannot bind " + path);
    if (::chmod(path.c_str(), mode) != 0) return errno_error("cannot chmod " + path);
    if (::listen(fd.get(), 16) != 0) return errno_error("cannot listen on " + path);
    return fd;
}

// A directory of root's that anyone may enter: the sockets decide who may
// do what by SO_PEERCRED, not by file modes. An existing one must be a
// directory itself (no symbolic link) of this process's owner, since its
// mode is changed and sockets are put in it.
Status ensure_open_dir(const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return plain_error("cannot create " + dir + ": " + ec.message());
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid())
        return errno_error("cannot open " + dir, "give a directory, not a symbolic link");
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat " + dir);
    if (st.st_uid != ::geteuid())
        return plain_error(
            dir + " is owned by uid " + std::to_string(st.st_uid) + ", not by this process's",
            "give a directory of root's for the approval sockets");
    if (::fchmod(fd.get(), 0755) != 0) return errno_error("cannot chmod " + dir);
    return ok_status();
}

std::string destination_of(const netfilter::Denial& d) {
    return profile::format_ip(d.address) + ":" + std::to_string(d.port) +
           (d.protocol.empty() ? "" : "/" + d.protocol);
}

// The answer to a caller who may neither see nor decide this session's
// requests; cordonctl leaves such sessions out.
json forbidden() {
    json answer = daemon::error_answer("not an approver or the launcher of this session");
    answer["forbidden"] = true;
    return answer;
}

struct AgentConn {
    UniqueFd fd;
    std::string buffer;
    std::string waiting_for;  // a tool, while an ask waits for its decision
    Clock::time_point wait_until;
};

class BrokerImpl final : public Broker {
  public:
    BrokerImpl(BrokerConfig config, BrokerHooks hooks)
        : config_(std::move(config)),
          hooks_(std::move(hooks)),
          approval_(config_.profile->approval),
          use_limiter_(audit::kDenialBurst, audit::kDenialsPerSecond, Clock::now()),
          ask_limiter_(audit::kDenialBurst, audit::kDenialsPerSecond, Clock::now()) {}
    ~BrokerImpl() override { end(); }

    Status open();
    int fd() const override { return epoll_.get(); }
    void on_ready() override;
    void on_event(const netfilter::Denial& event) override;
    void end() override;

  private:
    Status watch(int fd);
    void accept_approver();
    void accept_agent();
    void on_approver(int fd);
    void on_agent(int fd);
    void on_timer();
    void arm();
    void close_agent(int fd);
    void drop_approver(int fd);

    json handle_approver(const json& body, const daemon::Peer& peer);
    json list(const daemon::Peer& peer);
    json approve(const json& body, const daemon::Peer& peer);
    json deny(const json& body, const daemon::Peer& peer);
    Status may_grant(const daemon::Peer& peer) const;
    bool may_decide(const daemon::Peer& peer) const;
    bool may_view(const daemon::Peer& peer) const;
    json refuse(const daemon::Peer& peer, const std::string& op, const std::string& why);

    void handle_ask(AgentConn& conn, const std::string& line);
    std::optional<json> answer_now(const std::string& tool);
    void note(const std::string& tool, uint16_t gate, const std::string& via,
              const std::string& destination, const std::string& reason);
    void tell_waiting(const std::string& tool, const json& answer);
    void send_line(AgentConn& conn, const json& answer);

    void emit(const std::string& event, const json& fields) { hooks_.audit(event, fields); }
    void announce(const std::string& event, const json& fields);
    Status open_tool(const std::string& tool, uint16_t gate, std::optional<uint32_t> uses,
                     Clock::duration span, bool open_already);
    Grant& refresh(Grant& g);
    void emit_close(const Grant& g, const std::string& cause);
    void close_grant(Grant g, const std::string& cause);

    BrokerConfig config_;
    BrokerHooks hooks_;
    const profile::ApprovalPolicy& approval_;
    Book book_;
    // Each has its own budget, so that asks for tools that are none (the
    // agent's to make at will) cannot hide the uses of a grant.
    audit::DenialLimiter use_limiter_;  // approval.use
    audit::DenialLimiter ask_limiter_;  // approval.refused of op "ask"
    std::map<uid_t, audit::DenialLimiter> refusal_limiters_;
    UniqueFd epoll_, approver_listen_, agent_listen_, timer_;
    std::map<int, UniqueFd> approver_conns_;
    // approver_conns_' descriptors, oldest first: of callers who may see the
    // session's requests, and of the others.
    std::vector<int> viewer_order_, stranger_order_;
    std::map<int, AgentConn> agent_conns_;
    std::string approver_path_, agent_path_;
    bool ended_ = false;
};

Status BrokerImpl::watch(int fd) {
    epoll_event ev{EPOLLIN, {.fd = fd}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
        return errno_error("cannot watch an approval socket");
    return ok_status();
}

Status BrokerImpl::open() {
    epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!epoll_.valid() || !timer_.valid()) return errno_error("cannot set up the approval broker");
    if (auto st = ensure_open_dir(config_.approvals_dir); !st) return st;
    if (auto st = ensure_open_dir(config_.agent_dir); !st) return st;
    approver_path_ = config_.approvals_dir + "/" + config_.session_id + ".sock";
    auto approver = listen_unix(approver_path_, SOCK_SEQPACKET, 0666);
    if (!approver) return approver.error();
    approver_listen_ = std::move(*approver);
    agent_path_ = config_.agent_dir + "/socket";
    auto agent = listen_unix(agent_path_, SOCK_STREAM, 0666);
    if (!agent) return agent.error();
    agent_listen_ = std::move(*agent);
    for (int fd : {approver_listen_.get(), agent_listen_.get(), timer_.get()})
        if (auto st = watch(fd); !st) return st;
    return ok_status();
}

void BrokerImpl::on_ready() {
    epoll_event events[16];
    int n = ::epoll_wait(epoll_.get(), events, 16, 0);
    for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == approver_listen_.get())
            accept_approver();
        else if (fd == agent_listen_.get())
            accept_agent();
        else if (fd == timer_.get())
            on_timer();
        else if (approver_conns_.count(fd))
            on_approver(fd);
        else if (agent_conns_.count(fd))
            on_agent(fd);
    }
}

void BrokerImpl::accept_approver() {
    for (;;) {
        UniqueFd conn(
            ::accept4(approver_listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!conn.valid()) return;
        // Callers who may neither see nor decide (anyone may connect) have
        // slots of their own: however many they open, approvers keep theirs.
        auto peer = daemon::peer_of(conn.get());
        if (!peer) continue;
        std::vector<int>& order = may_view(*peer) ? viewer_order_ : stranger_order_;
        if (order.size() >= kMaxConnections) drop_approver(order.front());
        if (!watch(conn.get())) continue;
        int fd = conn.get();
        approver_conns_.emplace(fd, std::move(conn));
        order.push_back(fd);
    }
}

void BrokerImpl::accept_agent() {
    for (;;) {
        UniqueFd conn(
            ::accept4(agent_listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!conn.valid()) return;
        if (agent_conns_.size() >= kMaxConnections || !watch(conn.get())) continue;
        int fd = conn.get();
        agent_conns_.emplace(fd, AgentConn{std::move(conn), {}, {}, {}});
    }
}

// One request, one answer, then the connection closes.
void BrokerImpl::on_approver(int fd) {
    UniqueFd conn = std::move(approver_conns_.at(fd));
    drop_approver(fd);
    auto peer = daemon::peer_of(fd);
    auto m = daemon::receive_message(fd, kMaxMessageBytes);
    if (!m || !*m || !peer) {
        if (!m) (void)daemon::send_message(fd, daemon::error_answer(m.error().message()));
        return;
    }
    (void)daemon::send_message(fd, handle_approver((*m)->body, *peer));
}

json BrokerImpl::handle_approver(const json& body, const daemon::Peer& peer) {
    std::string op = body.contains("op") && body["op"].is_string() ? body["op"] : "";
    if (op == "list") return list(peer);
    if (op == "approve") return approve(body, peer);
    if (op == "deny") return deny(body, peer);
    return daemon::error_answer("op: expected list, approve or deny");
}

// Root or one of the profile's approvers.
bool BrokerImpl::may_decide(const daemon::Peer& peer) const {
    return daemon::may_launch(approval_.approvers, peer);
}

bool BrokerImpl::may_view(const daemon::Peer& peer) const {
    return may_decide(peer) || peer.uid == config_.launcher_uid;
}

// An approver who is neither the session's launcher nor its agent's
// account, unless the profile allows those to approve themselves.
Status BrokerImpl::may_grant(const daemon::Peer& peer) const {
    if (!may_decide(peer))
        return plain_error(peer.user + " (uid " + std::to_string(peer.uid) +
                           ") is not an approver of this profile (approval.approvers)");
    if (approval_.allow_self_approval) return ok_status();
    if (peer.uid == config_.agent_uid)
        return plain_error(peer.user +
                           " is the account the agent runs as, and may not approve "
                           "its own session's requests (approval.allowSelfApproval)");
    const auto& others = config_.launcher_accounts;
    if (peer.uid == config_.launcher_uid ||
        std::find(others.begin(), others.end(), peer.uid) != others.end())
        return plain_error(peer.user +
                           " launched this session and may not approve its own session's "
                           "requests; another approver must (approval.allowSelfApproval)");
    return ok_status();
}

// Refused callers are on the record within a budget per uid, so that a
// caller who loops cannot flood the audit log; the next event written
// carries the count held back.
json BrokerImpl::refuse(const daemon::Peer& peer, const std::string& op, const std::string& why) {
    auto now = Clock::now();
    auto limiter =
        refusal_limiters_.try_emplace(peer.uid, audit::kDenialBurst, audit::kDenialsPerSecond, now)
            .first;
    if (limiter->second.admit(now)) {
        json fields = {
            {"op", op}, {"uid", peer.uid}, {"user", peer.user}, {"pid", peer.pid}, {"reason", why}};
        if (uint64_t held = limiter->second.take_suppressed()) fields["earlierSuppressed"] = held;
        emit("approval.refused", fields);
    }
    return daemon::error_answer(why);
}

json BrokerImpl::list(const daemon::Peer& peer) {
    if (!may_view(peer)) return forbidden();
    json requests = json::array(), grants = json::array();
    for (const auto& [_, r] : book_.requests()) requests.push_back(to_json(r));
    for (const auto& [tool, _] : book_.grants())
        grants.push_back(to_json(refresh(*book_.grant_for_tool(tool))));
    const auto& identity = config_.profile->identity;
    return {{"ok", true},
            {"session", config_.session_id},
            {"agentId", identity.agent_id},
            {"agentType", identity.agent_type},
            {"deadline", audit::format_time(config_.deadline)},
            {"requests", requests},
            {"grants", grants}};
}

// The window a grant asks for, in seconds: positive, at most maxWindow.
Result<std::chrono::seconds> window_of(const json& body, const profile::ApprovalPolicy& policy) {
    auto it = body.find("for");
    if (it == body.end() || !it->is_number_integer() || it->get<int64_t>() <= 0)
        return plain_error("--for: expected a positive number of seconds");
    std::chrono::seconds window{it->get<int64_t>()};
    if (window > policy.max_window)
        return plain_error("--for " + std::to_string(window.count()) + "s is longer than the " +
                           std::to_string(policy.max_window.count()) +
                           "s this profile allows (approval.maxWindow): grant a shorter window");
    return window;
}

Result<std::optional<uint32_t>> uses_of(const json& body) {
    auto it = body.find("uses");
    if (it == body.end() || it->is_null()) return std::optional<uint32_t>{};
    if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<uint64_t>() > kMaxUses)
        return plain_error("--uses: expected a number of connections from 1 to " +
                           std::to_string(kMaxUses));
    return std::optional<uint32_t>(it->get<uint32_t>());
}

std::string id_of(const json& body) {
    auto it = body.find("id");
    return it != body.end() && it->is_string() ? it->get<std::string>() : "";
}

json BrokerImpl::approve(const json& body, const daemon::Peer& peer) {
    std::string id = id_of(body);
    Request* r = book_.pending(id);
    if (!r) return daemon::error_answer("no pending request " + id + " in this session");
    if (auto st = may_grant(peer); !st) return refuse(peer, "approve " + id, st.error().what);
    auto window = window_of(body, approval_);
    if (!window) return refuse(peer, "approve " + id, window.error().what);
    auto uses = uses_of(body);
    if (!uses) return daemon::error_answer(uses.error().what);
    // Grants never outlive the session.
    auto left = config_.deadline - SysClock::now();
    Clock::duration span = std::min<Clock::duration>(*window, left);

    std::string tool = r->tool;
    // A grant still open is replaced. Its count is read first: opening the
    // gate again starts the kernel's count anew.
    Grant* open = book_.grant_for_tool(tool);
    if (open) refresh(*open);
    if (auto st = open_tool(tool, r->gate, *uses, span, open != nullptr); !st) {
        emit("approval.error", {{"id", id}, {"tool", tool}, {"error", st.error().what}});
        return daemon::error_answer(st.error().what);
    }
    if (open) emit_close(*book_.take_grant(tool), "replaced");
    Grant& g = book_.grant(id, span, *uses, peer.uid, peer.user);
    json fields = to_json(g);
    fields["windowSeconds"] = std::chrono::duration_cast<std::chrono::seconds>(span).count();
    fields["approverPid"] = peer.pid;
    emit("approval.grant", fields);
    announce("approval.grant", fields);
    tell_waiting(tool, {{"decision", "granted"}, {"grant", to_json(g)}});
    arm();
    return {{"ok", true}, {"grant", to_json(g)}};
}

// Issues the tool's credentials (unless a grant still open holds them) and
// opens its gate for span.
Status BrokerImpl::open_tool(const std::string& tool, uint16_t gate, std::optional<uint32_t> uses,
                             Clock::duration span, bool open_already) {
    if (!open_already)
        if (auto st = hooks_.open_credentials(tool); !st)
            return plain_error("cannot issue the credentials of " + tool + ": " +
                               st.error().message());
    if (auto st = hooks_.open_gate(gate, uses, Clock::now() + span); !st) {
        if (!open_already) hooks_.close_credentials(tool);
        return plain_error("cannot open " + tool + ": " + st.error().message());
    }
    return ok_status();
}

json BrokerImpl::deny(const json& body, const daemon::Peer& peer) {
    std::string id = id_of(body);
    Request* r = book_.pending(id);
    if (!r) return daemon::error_answer("no pending request " + id + " in this session");
    if (!may_decide(peer))
        return refuse(peer, "deny " + id,
                      peer.user + " is not an approver of this profile (approval.approvers)");
    std::string reason;
    if (auto it = body.find("reason"); it != body.end() && it->is_string())
        reason = clipped(it->get<std::string>(), kMaxReason);
    Request taken = book_.take(id);
    book_.cool_down(taken.tool, Clock::now() + approval_.deny_cooldown);
    json fields = to_json(taken);
    fields["uid"] = peer.uid;
    fields["user"] = peer.user;
    fields["denyReason"] = reason.empty() ? json(nullptr) : json(reason);
    emit("approval.deny", fields);
    announce("approval.deny", fields);
    tell_waiting(taken.tool,
                 {{"decision", "denied"}, {"tool", taken.tool}, {"id", id}, {"reason", reason}});
    arm();
    return {{"ok", true}, {"id", id}};
}

// Forgets an approver's connection; closes it unless the caller took it.
void BrokerImpl::drop_approver(int fd) {
    (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    approver_conns_.erase(fd);
    for (auto* order : {&viewer_order_, &stranger_order_})
        order->erase(std::remove(order->begin(), order->end(), fd), order->end());
}

void BrokerImpl::close_agent(int fd) {
    (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    agent_conns_.erase(fd);
}

// Lines of JSON; a line longer than kMaxMessageBytes ends the connection.
void BrokerImpl::on_agent(int fd) {
    AgentConn& conn = agent_conns_.at(fd);
    char buf[kMaxMessageBytes];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        close_agent(fd);
        return;
    }
    conn.buffer.append(buf, static_cast<size_t>(n));
    size_t newline;
    while ((newline = conn.buffer.find('\n')) != std::string::npos) {
        std::string line = conn.buffer.substr(0, newline);
        conn.buffer.erase(0, newline + 1);
        handle_ask(conn, line);
    }
    if (conn.buffer.size() > kMaxMessageBytes) {
        send_line(conn, {{"error", "request longer than 4096 bytes"}});
        close_agent(fd);
    }
}

void BrokerImpl::send_line(AgentConn& conn, const json& answer) {
    std::string line = answer.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    // Small answers to a peer that reads them; one that does not loses them.
    (void)!::send(conn.fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// The answer to an ask that needs no waiting, if any: the tool is open
// already, or can never be.
std::optional<json> BrokerImpl::answer_now(const std::string& tool) {
    const auto& policy = *config_.policy;
    if (std::find(policy.allowed_tools.begin(), policy.allowed_tools.end(), tool) !=
        policy.allowed_tools.end())
        return json{{"decision", "allowed"}, {"tool", tool}};
    if (!policy::gated_tool(policy, tool))
        return json{{"decision", "denied"},
                    {"tool", tool},
                    {"reason", "not a tool of approvalRequired in this session's profile"}};
    if (Grant* g = book_.grant_for_tool(tool); g && (!g->uses || refresh(*g).used < *g->uses))
        return json{{"decision", "granted"}, {"grant", to_json(*g)}};
    if (auto left = book_.cooling(tool, Clock::now())) {
        auto seconds = std::chrono::ceil<std::chrono::seconds>(*left).count();
        return json{{"decision", "denied"},
                    {"tool", tool},
                    {"retryAfter", seconds},
                    {"reason", "denied a moment ago: ask again in " + std::to_string(seconds) +
                                   " s (approval.denyCooldown)"}};
    }
    return std::nullopt;
}

Result<std::chrono::seconds> ask_timeout(const json& ask, std::chrono::seconds most) {
    auto it = ask.find("timeout");
    if (it == ask.end()) return std::min(kDefaultAskTimeout, most);
    if (!it->is_number_integer() || it->get<int64_t>() <= 0)
        return plain_error("timeout: expected a positive number of seconds");
    return std::min(std::chrono::seconds(it->get<int64_t>()), most);
}

void BrokerImpl::handle_ask(AgentConn& conn, const std::string& line) {
    if (!conn.waiting_for.empty())
        return send_line(conn, {{"error", "one ask at a time on a connection"}});
    json ask = json::parse(line, nullptr, false);
    if (!ask.is_object() || !ask.contains("tool") || !ask["tool"].is_string())
        return send_line(conn, {{"error", "expected {\"tool\": NAME, \"reason\": TEXT}"}});
    std::string tool = ask["tool"];
    auto timeout = ask_timeout(ask, approval_.request_timeout);
    if (!timeout) return send_line(conn, {{"error", timeout.error().what}});
    if (auto now = answer_now(tool)) {
        if ((*now)["decision"] == "denied" && ask_limiter_.admit(Clock::now())) {
            json fields = {
                {"op", "ask"}, {"tool", clipped(tool, 100)}, {"reason", (*now)["reason"]}};
            if (uint64_t held = ask_limiter_.take_suppressed()) fields["earlierSuppressed"] = held;
            emit("approval.refused", fields);
        }
        return send_line(conn, *now);
    }
    std::string reason;
    if (auto it = ask.find("reason"); it != ask.end() && it->is_string())
        reason = clipped(it->get<std::string>(), kMaxReason);
    note(tool, policy::gated_tool(*config_.policy, tool)->gate, "ask", "", reason);
    conn.waiting_for = tool;
    conn.wait_until = Clock::now() + *timeout;
    arm();
}

// The pending request for a tool, new ones on the record and announced.
// The request is filled in before it is announced: the record and the
// webhook show what approvers will see.
void BrokerImpl::note(const std::string& tool, uint16_t gate, const std::string& via,
                      const std::string& destination, const std::string& reason) {
    if (book_.cooling(tool, Clock::now())) return;  // denied a moment ago: no new request yet
    auto noted = book_.note(tool, gate, approval_.request_timeout);
    Request& r = *noted.request;
    if (via == "connect") r.attempts++;
    if (r.destination.empty()) r.destination = destination;
    if (r.reason.empty()) r.reason = reason;
    if (noted.created) {
        json fields = to_json(*noted.request);
        fields["via"] = via;
        emit("approval.request", fields);
        announce("approval.request", fields);
        arm();
    }
}

void BrokerImpl::announce(const std::string& event, const json& fields) {
    if (!hooks_.notify) return;
    json body = fields;
    body["session"] = config_.session_id;
    if (event == "approval.request") {
        // Ten minutes, or the profile's longest window when it is shorter.
        auto window =
            std::min<std::chrono::seconds>(std::chrono::minutes(10), approval_.max_window);
        // The approvals directory when it is not cordonctl's default.
        std::string dir = config_.approvals_dir == kDefaultApprovalsDir
                              ? ""
                              : " --approvals-dir " + config_.approvals_dir;
        body["approve"] = "cordonctl approve " + fields.value("id", "") + " --for " +
                          std::to_string(window.count()) + "s" + dir;
        body["deny"] = "cordonctl deny " + fields.value("id", "") + dir;
    }
    hooks_.notify(event, body);
}

void BrokerImpl::tell_waiting(const std::string& tool, const json& answer) {
    for (auto& [_, conn] : agent_conns_) {
        if (conn.waiting_for != tool) continue;
        send_line(conn, answer);
        conn.waiting_for.clear();
    }
}

void BrokerImpl::on_event(const netfilter::Denial& d) {
    const policy::GatedTool* tool = policy::gated_tool(*config_.policy, d.gate);
    if (!tool) return;
    json where = {{"destination", profile::format_ip(d.address)},
                  {"port", d.port},
                  {"protocol", d.protocol},
                  {"pid", d.pid},
                  {"comm", d.comm},
                  {"hook", d.hook}};
    if (d.reason == "approval-required") {
        // Only an attempt asks: a packet egress dropped (of a connection
        // whose window ended) is none.
        if (d.hook != "egress") note(tool->name, tool->gate, "connect", destination_of(d), "");
        return;
    }
    if (d.reason != "gate-use") return;
    Grant* g = book_.grant_for_gate(d.gate);
    if (!g) return;
    // An event held back is counted for the grant's approval.close (the use
    // itself the kernel counts).
    if (!use_limiter_.admit(Clock::now())) {
        g->use_events_suppressed++;
        return;
    }
    json fields = where;
    fields["id"] = g->id;
    fields["tool"] = g->tool;
    fields["used"] = d.used;
    fields["usesLeft"] = d.uses_left ? json(*d.uses_left) : json(nullptr);
    if (uint64_t held = use_limiter_.take_suppressed()) fields["earlierSuppressed"] = held;
    emit("approval.use", fields);
}

// The grant with the kernel's count of its uses, when the kernel has one.
Grant& BrokerImpl::refresh(Grant& g) {
    if (!hooks_.gate_state) return g;
    auto state = hooks_.gate_state(g.gate);
    if (state)
        g.used = state->used;
    else
        log()->debug("{}", state.error().message());
    return g;
}

void BrokerImpl::emit_close(const Grant& g, const std::string& cause) {
    json fields = to_json(g);
    fields["cause"] = cause;
    fields["useEventsSuppressed"] = g.use_events_suppressed;
    emit("approval.close", fields);
}

// The count is read before the gate closes: closing forgets it.
void BrokerImpl::close_grant(Grant g, const std::string& cause) {
    refresh(g);
    if (auto st = hooks_.close_gate(g.gate); !st) log()->error("{}", st.error().message());
    hooks_.close_credentials(g.tool);
    emit_close(g, cause);
}

void BrokerImpl::on_timer() {
    uint64_t expirations;
    (void)!::read(timer_.get(), &expirations, sizeof expirations);
    auto now = Clock::now();
    for (const Request& r : book_.take_expired(now)) {
        json fields = to_json(r);
        fields["cause"] = "request-timeout";
        emit("approval.expire", fields);
        announce("approval.expire", fields);
        tell_waiting(r.tool, {{"decision", "expired"}, {"tool", r.tool}, {"id", r.id}});
    }
    for (const Grant& g : book_.take_ended(now)) close_grant(g, "window-ended");
    for (auto& [_, conn] : agent_conns_) {
        if (conn.waiting_for.empty() || conn.wait_until > now) continue;
        Request* r = book_.pending_for_tool(conn.waiting_for);
        send_line(conn, {{"decision", "timeout"},
                         {"id", r ? json(r->id) : json(nullptr)},
                         {"pending", r != nullptr}});
        conn.waiting_for.clear();
    }
    arm();
}

void BrokerImpl::arm() {
    std::optional<Clock::time_point> next = book_.next_event();
    for (const auto& [_, conn] : agent_conns_)
        if (!conn.waiting_for.empty() && (!next || conn.wait_until < *next)) next = conn.wait_until;
    itimerspec spec{};
    if (next) {
        auto ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(next->time_since_epoch()).count();
        // Zero would disarm the timer: a time already past fires at once.
        spec.it_value.tv_sec = ns / 1000000000;
        spec.it_value.tv_nsec = std::max<long>(ns % 1000000000, 1);
    }
    (void)::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &spec, nullptr);
}

void BrokerImpl::end() {
    if (ended_) return;
    ended_ = true;
    for (const Grant& g : book_.take_all_grants()) close_grant(g, "session-ended");
    for (const Request& r : book_.take_all_requests()) {
        json fields = to_json(r);
        fields["cause"] = "session-ended";
        emit("approval.expire", fields);
        announce("approval.expire", fields);
    }
    agent_conns_.clear();
    approver_conns_.clear();
    viewer_order_.clear();
    stranger_order_.clear();
    if (!approver_path_.empty()) ::unlink(approver_path_.c_str());
    if (!agent_path_.empty()) ::unlink(agent_path_.c_str());
    approver_listen_ = UniqueFd();
    agent_listen_ = UniqueFd();
}

}  // namespace

Result<std::unique_ptr<Broker>> Broker::start(BrokerConfig config, BrokerHooks hooks) {
    auto broker = std::make_unique<BrokerImpl>(std::move(config), std::move(hooks));
    if (auto st = broker->open(); !st) return st.error();
    return std::unique_ptr<Broker>(std::move(broker));
}

}  // namespace cordon::approval
