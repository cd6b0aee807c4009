// SPDX-License-Identifier: Apache-2.0
// Reading a profile file: JSON syntax, duplicate keys, then validation, and
// credential file paths made absolute against the profile's own directory.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "profile/fields.h"
#include "profile/profile.h"

namespace cordon::profile {
namespace {

using detail::index_path;
using detail::join_path;
using detail::json;

// nlohmann/json keeps the last of two equal keys without a word. In a
// security profile that is ambiguous (which "allowedTools" counts?), so a
// parser callback tracks the path and refuses a key seen twice in an object.
class DuplicateKeyCheck {
  public:
    bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
        switch (event) {
            case json::parse_event_t::object_start:
            case json::parse_event_t::array_start:
                count_element();
                frames_.push_back({event == json::parse_event_t::object_start, {}, {}, -1});
                break;
            case json::parse_event_t::object_end:
            case json::parse_event_t::array_end:
                frames_.pop_back();
                break;
            case json::parse_event_t::key:
                note_key(parsed.get<std::string>());
                break;
            case json::parse_event_t::value:
                count_element();
                break;
        }
        return true;
    }

  private:
    struct Frame {
        bool object;
        std::set<std::string> keys;
        std::string key;  // the key being read, in an object
        long index;       // the element being read, in an array
    };

    void count_element() {
        if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
    }

    void note_key(const std::string& key) {
        Frame& top = frames_.back();
        if (!top.keys.insert(key).second) {
            throw ProfileError(join_path(container_path(), key),
                               "duplicate key (each key may appear once in an object)");
        }
        top.key = key;
    }

    // The path of the innermost open container.
    std::string container_path() const {
        std::string path;
        for (size_t i = 0; i + 1 < frames_.size(); ++i) {
            const Frame& f = frames_[i];
            path = f.object ? join_path(path, f.key) : index_path(path, f.index);
        }
        return path;
    }

    std::vector<Frame> frames_;
};

std::string read_file(const std::string& file) {
    if (std::filesystem::is_directory(file)) {
        throw ProfileError(file, "", "is a directory (expected a profile JSON file)");
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        throw ProfileError(file, "",
                           std::string("cannot open: ") + std::strerror(errno) +
                               " (check the path and its permissions)");
    }
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// "[json.exception.parse_error.101] parse error at line 3, column 5: ..."
// loses its bracketed id; the rest names line, column and what was expected.
std::string describe_parse_error(const json::parse_error& e) {
    std::string message = e.what();
    size_t close = message.find("] ");
    return close == std::string::npos ? message : message.substr(close + 2);
}

void resolve_credential_paths(Profile& profile, const std::string& file) {
    std::filesystem::path dir = std::filesystem::absolute(file).parent_path();
    auto resolve = [&dir](std::string& path) {
        if (!path.empty() && std::filesystem::path(path).is_relative())
            path = (dir / path).lexically_normal().string();
    };
    for (auto& [name, cred] : profile.credentials) {
        if (cred.source.kind == CredentialSource::Kind::file) resolve(cred.source.ref);
        resolve(cred.source.oauth.client_secret_file);
        resolve(cred.source.oauth.private_key_file);
        resolve(cred.source.oauth.ca_bundle);
    }
    if (auto& hook = profile.approval.webhook) {
        resolve(hook->secret_file);
        resolve(hook->url_file);
        resolve(hook->ca_bundle);
    }
}

}  // namespace

Profile load_profile(const std::string& file, TimePoint now) {
    std::string text = read_file(file);
    try {
        DuplicateKeyCheck duplicates;
        json doc =
            json::parse(text, [&duplicates](int depth, json::parse_event_t event, json& parsed) {
                return duplicates(depth, event, parsed);
            });
        Profile profile = parse_profile(doc, now);
        resolve_credential_paths(profile, file);
        return profile;
    } catch (const json::parse_error& e) {
        throw ProfileError(file, "", describe_parse_error(e));
    } catch (const ProfileError& e) {
        throw ProfileError(file, e.path(), e.reason());
    }
}

}  // namespace cordon::profile
