// Signed catalogue statements and approvals (src/hepbundle/repository/statements.py,
// approvals.py; bundle-spec/repository.md § 3a): when the trust policy's rule for a name has
// catalog: signers, resolve replays the name's hash-chained publish / alias / yank statements,
// checks the signatures of the ones it relies on (role inside the signed statement), refuses a
// catalogue whose unsigned fields disagree with them (alias hijack, un-yank, hidden release), an
// expired head statement, a serial rolled back, and a chain older than this node has seen
// (catalog-state.json in the node cache, shared with Python). An alias the policy guards with
// approvals resolves only to a version that still has a valid signed approval per role.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <list>
#include <set>
#include <tuple>

#include "sig.hpp"

namespace hepbundle::detail {

namespace {

const char* kStatementResource = "hepbundle-catalog-statement.json";

std::string nowUtc() {
  return formatUtc(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

// body.get(key) == value, with Python's equality of JSON values (1 == 1.0, None == null)
bool equals(const json& body, const char* key, const json& value) {
  auto it = body.find(key);
  const json& v = it == body.end() ? json() : *it;
  if (v.is_number() && value.is_number()) return v.get<double>() == value.get<double>() && !v.is_boolean();
  return v == value;
}

std::int64_t intOf(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end()) return 0;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_number_float()) return static_cast<std::int64_t>(it->get<double>());
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (const std::exception&) {
    }
  }
  throw VerificationError("catalogue statement field " + std::string(key) + " is not an integer: " + it->dump());
}

struct Statement {
  json body;
  ParsedSignature sig;
  std::string role;
  std::int64_t signedAt;
};

// signing.parse_statement: the statement's signed resource must be the statement it carries
Statement parseStatement(const json& doc, const std::string& where) {
  ParsedSignature sig = parseSignatureDocument(doc, where);
  const json stmt = signedStatement(sig);
  const json* extra = nullptr;
  if (auto p = stmt.find("predicate"); p != stmt.end() && p->is_object())
    if (auto h = p->find("hepbundle"); h != p->end() && h->is_object()) extra = &*h;
  const json* text = nullptr;
  if (extra)
    if (auto t = extra->find("statement"); t != extra->end() && t->is_string()) text = &*t;
  json body;
  if (text) {
    try {
      body = parseJson(text->get<std::string>(), where);
    } catch (const FormatError&) {
      body = json();
    }
  }
  if (!text || !body.is_object()) throw SignatureError(where + ": not a catalogue statement (no signed statement body)");
  std::map<std::string, std::string> signedMap;
  try {
    signedMap = statementDigests(stmt);
  } catch (const std::invalid_argument& e) {
    throw SignatureError(where + ": malformed statement signature: " + e.what());
  }
  if (signedMap != std::map<std::string, std::string>{{kStatementResource, sha256Hex(text->get<std::string>())}})
    throw SignatureError(where + ": the statement does not match its signature");
  const auto role = extra->find("role");
  return {std::move(body), std::move(sig), role == extra->end() ? "None" : pyStr(*role), signedTime(stmt)};
}

struct Replay {
  std::map<std::string, std::string> published, aliases, yanked;
  std::map<std::pair<std::string, std::string>, std::size_t> last;

  std::optional<std::string> latest() const {
    std::optional<std::string> best;
    for (const auto& [v, d] : published)
      if (!yanked.count(v) && !isPrerelease(v) && (!best || versionKey(v) > versionKey(*best))) best = v;
    return best;
  }
};

Replay replay(const std::string& name, const std::vector<Statement>& chain) {
  Replay state;
  json previous = nullptr;
  for (std::size_t i = 0; i < chain.size(); ++i) {
    const json& b = chain[i].body;
    if (!equals(b, "name", name) || !equals(b, "seq", i) || !equals(b, "previous", previous))
      throw VerificationError("catalogue of " + name + ": statement " + std::to_string(i) +
                                  " does not continue the chain (name, sequence number or previous digest differ)",
                              "the catalogue file was spliced or edited; do not use it");
    const std::string kind = b.contains("type") ? pyStr(b["type"]) : "None";
    const std::string v = b.contains("version") ? pyStr(b["version"]) : "None";
    auto get = [&](const char* k) { return b.contains(k) ? pyStr(b[k]) : std::string("None"); };
    if (kind == "publish") state.published[v] = get("manifestSha256");
    else if (kind == "alias") state.aliases[get("alias")] = v;
    else if (kind == "yank") state.yanked[v] = get("reason");
    else
      throw VerificationError("catalogue of " + name + ": statement " + std::to_string(i) + " has unknown type " +
                              (b.contains("type") && b["type"].is_string() ? pyrepr(kind) : kind));
    state.last[{kind, b.contains("alias") ? get("alias") : v}] = i;
    previous = statementDigest(b);
  }
  return state;
}

std::string serialKind(const std::string& name, const std::string& serialFile) {
  return endsWith(serialFile, "namespace.json") ? "namespace " + name.substr(0, name.find('/')) + " serial" : "repository serial";
}

// statements.NodeState: the highest serial and, per name, chain length and head digest this node
// has seen of each repository; one lock per process around its read-modify-write
std::mutex& stateLock() {
  static std::mutex m;
  return m;
}

[[noreturn]] void rollback(const std::string& message, const std::string& hint = "") { throw CatalogRollbackError(message, hint); }

void checkAndRecord(const std::string& path, const std::string& repository, const std::string& name, std::int64_t length,
                    const std::string& head, std::int64_t repoSerial, const std::optional<std::string>& ns, const Options& o) {
  std::lock_guard<std::mutex> g(stateLock());
  json data = json::object();
  try {
    data = parseJson(readSmallFile(path, kMaxJsonBytes), path);
    if (!data.is_object()) data = json::object();
  } catch (const ReadError& e) {
    if (e.err != ENOENT) log(o, LogLevel::Warning, path + " unreadable; rollback detection starts afresh");
  } catch (const FormatError&) {
    log(o, LogLevel::Warning, path + " unreadable; rollback detection starts afresh");
    data = json::object();
  }
  if (!data.contains(repository) || !data[repository].is_object()) data[repository] = {{"serial", 0}, {"names", json::object()}};
  json& repo = data[repository];
  if (!repo.contains("names") || !repo["names"].is_object()) repo["names"] = json::object();
  const json seen = repo["names"].value(name, json());
  if (ns && (!repo.contains("namespaces") || !repo["namespaces"].is_object())) repo["namespaces"] = json::object();
  const json& counter = ns ? repo["namespaces"].value(*ns, json(0)) : repo.value("serial", json(0));
  const std::int64_t highest = counter.is_number() ? counter.get<std::int64_t>() : 0;
  if (repoSerial < highest)
    rollback("repository " + (ns ? repository + " namespace " + *ns : repository) + " is at serial " + std::to_string(repoSerial) +
                 ", this node has seen " + std::to_string(highest) + ": rollback refused",
             "a stale replica or an old copy is being served");
  if (seen.is_array() && seen.size() == 2 && seen[0].is_number()) {
    const std::int64_t seenLength = seen[0].get<std::int64_t>();
    if (length < seenLength)
      rollback("the catalogue of " + name + " in " + repository + " has " + std::to_string(length) +
                   " signed statements, this node has seen " + std::to_string(seenLength) + ": rollback refused",
               "an older catalogue file was put back (un-yank, hidden release?)");
    if (length == seenLength && seen[1] != head)
      rollback("the catalogue of " + name + " in " + repository + " forked: same length as seen before, another head statement");
  }
  const json now = json::array({length, head});
  if (seen == now && repoSerial == highest) return;
  if (ns) repo["namespaces"][*ns] = std::max(repoSerial, highest);
  else repo["serial"] = std::max(repoSerial, highest);
  repo["names"][name] = now;
  // written as Python writes it (canonical JSON), atomically; not writable: carry on without
  const std::string parent = dirName(path);
  for (std::size_t pos = 1; pos != std::string::npos; pos = parent.find('/', pos + 1)) mkdir(parent.substr(0, pos).c_str(), 0700);
  mkdir(parent.c_str(), 0700);
  writeFileAtomic(path, canonicalJson(data));
}

// signing._directory_digests: every regular file under a signed record directory
void walk(const std::string& root, const std::string& rel, Algorithm alg, std::map<std::string, std::string>& out) {
  const std::string dir = rel.empty() ? root : root + "/" + rel;
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  std::vector<std::string> dirs;
  for (const auto& n : names) {
    const std::string r = rel.empty() ? n : rel + "/" + n;
    struct stat st {}, target {};
    if (lstat((root + "/" + r).c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      dirs.push_back(r);
      continue;
    }
    // os.walk lists a link to a directory with the directories, and does not enter it
    if (S_ISLNK(st.st_mode) && stat((root + "/" + r).c_str(), &target) == 0 && S_ISDIR(target.st_mode)) continue;
    if ((rel.empty() && isReserved(r)) || startsWith(n, ".hepbundle.")) continue;
    checkRelpath(r);
    if (S_ISLNK(st.st_mode)) throw PathError(root + "/" + r + " is a symlink; signed directories hold regular files");
    out[r] = hashFile(root + "/" + r, alg);
  }
  for (const auto& r : dirs) walk(root, r, alg, out);
}

// approvals._valid: a record that is a valid role approval of the manifest digest
bool validApproval(const std::string& dir, const json& record, const std::string& name, const std::string& alias, const std::string& role,
                   const std::string& digest, const TrustPolicy& policy, const Options& o) {
  const json payload = record.value("payload", json::object());
  if (!payload.is_object() || payload.value("role", json()) != role || record.value("manifestSha256", json()) != digest) return false;
  const std::string recordName = pyStr(record.value("name", json()));
  try {
    const auto files = signatureFiles(dir);
    if (files.empty()) throw SignatureError(dir + " is unsigned (hepbundle.sig is missing)", "sign it with: hepbundle sign");
    std::map<std::string, std::map<std::string, std::string>> hashed;
    std::vector<Candidate> candidates;
    for (const auto& [fileRole, path] : files) {
      ParsedSignature sig = parseSignature(path, baseName(path));
      const json stmt = signedStatement(sig);
      const std::string alg = statementAlgorithm(sig, stmt);
      if (!hashed.count(alg)) walk(dir, "", algorithmFromName(alg), hashed[alg]);
      checkSignedDigests(sig, stmt, hashed[alg], algorithmFromName(alg), dir);
      // the one-rule policy of an approval names no TSA (approvals._one_rule): a token refuses
      if (!sig.timestamps.empty())
        throw PolicyError(dir + ": " + sig.name + " carries an RFC 3161 timestamp, but the trust policy names no TSA");
      const std::string r = signedRole(sig, stmt, fileRole, dir);
      candidates.push_back(Candidate{std::move(sig), r, signedTime(stmt)});
    }
    const auto signers = evaluateApproval(policy, name, alias, role, recordName, candidates);
    // the signature that satisfied the rule must be the one signed as this role
    return std::any_of(signers.begin(), signers.end(), [&](const Signer& s) { return s.role == role; });
  } catch (const VerificationError& e) {
    log(o, LogLevel::Info, "approval " + baseName(dir) + " (" + role + ") does not count: " + e.message());
    return false;
  }
}

}  // namespace

std::string canonicalJson(const json& value) { return value.dump(2) + "\n"; }

std::string statementDigest(const json& body) { return "sha256:" + sha256Hex(canonicalJson(body)); }

namespace {

// what a chain of statements says, parsed and replayed once per process for the same catalogue
// bytes; and which statements were verified under which policy object (a policy read again is a
// new object: verified again). Bounded; the only state besides the node cache.
struct ParsedChain {
  std::vector<Statement> chain;
  Replay replay;
  std::string headDigest;
};
struct ChainMemo {
  std::mutex lock;
  std::list<std::pair<std::string, std::shared_ptr<const ParsedChain>>> chains;  // newest first
  std::list<std::tuple<std::string, std::size_t, std::weak_ptr<const TrustPolicy>>> verified;
};
ChainMemo& chainMemo() {
  static ChainMemo m;
  return m;
}
constexpr std::size_t kMemoChains = 16, kMemoVerified = 256;

std::shared_ptr<const ParsedChain> parsedChain(const CatalogEntry& e) {
  ChainMemo& m = chainMemo();
  if (!e.catalogDigest.empty()) {
    std::lock_guard<std::mutex> g(m.lock);
    for (const auto& [k, v] : m.chains)
      if (k == e.catalogDigest) return v;
  }
  auto parsed = std::make_shared<ParsedChain>();
  parsed->chain.reserve(e.statements->size());
  for (std::size_t i = 0; i < e.statements->size(); ++i)
    parsed->chain.push_back(parseStatement(json::parse((*e.statements)[i].dump()), e.name + " statement " + std::to_string(i)));
  parsed->replay = replay(e.name, parsed->chain);
  parsed->headDigest = statementDigest(parsed->chain.back().body);
  if (!e.catalogDigest.empty()) {
    std::lock_guard<std::mutex> g(m.lock);
    m.chains.emplace_front(e.catalogDigest, parsed);
    if (m.chains.size() > kMemoChains) m.chains.pop_back();
  }
  return parsed;
}

bool samePolicy(const std::weak_ptr<const TrustPolicy>& a, const PolicyPtr& b) {
  return !a.expired() && !a.owner_before(b) && !b.owner_before(a);
}

// verify_statement of statement i under policy, once per (catalogue bytes, statement, policy)
void verifyStatement(const CatalogEntry& e, const ParsedChain& parsed, std::size_t i, const PolicyPtr& policy) {
  ChainMemo& m = chainMemo();
  if (!e.catalogDigest.empty()) {
    std::lock_guard<std::mutex> g(m.lock);
    for (const auto& [k, index, p] : m.verified)
      if (index == i && k == e.catalogDigest && samePolicy(p, policy)) return;
  }
  const Statement& st = parsed.chain[i];
  evaluateCatalog(*policy, e.name, pyStr(st.body.value("type", json())), {Candidate{st.sig, st.role, st.signedAt}});
  if (e.catalogDigest.empty()) return;
  std::lock_guard<std::mutex> g(m.lock);
  m.verified.emplace_front(e.catalogDigest, i, policy);
  if (m.verified.size() > kMemoVerified) m.verified.pop_back();
}

}  // namespace

void checkCatalogStatements(const CatalogEntry& e, const PolicyPtr& policyPtr, const SerialInfo& serial, const Options& o) {
  const std::string& name = e.name;
  const TrustPolicy& policy = *policyPtr;
  if (!signsCatalog(policy, name)) return;
  if (!e.statements || !e.statements->is_array() || e.statements->empty())
    throw PolicyError("the catalogue of " + name + " carries no signed statements, but the trust policy " + policySource(policy) +
                          " requires them",
                      "the catalogue was written without a statement signer, or replaced");
  const auto parsed = parsedChain(e);
  const std::vector<Statement>& chain = parsed->chain;
  const Replay& now = parsed->replay;
  const Statement& head = chain.back();
  std::set<std::size_t> used{chain.size() - 1};
  const std::string& v = e.version;
  auto pub = now.published.find(v);
  if (pub == now.published.end() || pub->second != e.digest)
    throw PolicyError(name + "@" + v + ": no signed publish statement for this version and manifest digest",
                      "the catalogue entry was added or changed without a release signature");
  used.insert(now.last.at({"publish", v}));
  const auto& sel = e.selector;
  if (sel && *sel != v && *sel != "latest") {
    auto signedTo = now.aliases.find(*sel);
    if (signedTo == now.aliases.end() || signedTo->second != v)
      throw PolicyError(name + "@" + *sel + " points at " + v + ", but its last signed move is " +
                            (signedTo != now.aliases.end() ? "to " + signedTo->second : std::string("none")),
                        "the alias was moved without a release signature (hijack?): refusing");
    used.insert(now.last.at({"alias", *sel}));
  }
  if ((!sel || *sel == "latest") && now.latest() != v)
    throw PolicyError(name + ": the catalogue's latest release is " + v + ", the signed statements say " + now.latest().value_or("None"),
                      "a version was hidden or un-yanked behind the signers' back");
  if (now.yanked.count(v) != static_cast<std::size_t>(e.yanked))
    throw PolicyError(name + "@" + v + ": yanked state differs from the signed statements (" +
                          (now.yanked.count(v) ? "yanked" : "not yanked") + " when signed)",
                      "an old catalogue was copied over the current one (rollback?)");
  for (std::size_t i : used) verifyStatement(e, *parsed, i, policyPtr);
  if (auto expires = head.body.find("expires"); expires != head.body.end() && expires->is_string() && expires->get<std::string>() < nowUtc())
    throw CatalogRollbackError("the catalogue of " + name + " expired at " + expires->get<std::string>() + " (its newest signed statement)",
                               "the mirror serving it stopped updating (frozen?): use a current replica");
  const std::int64_t headSerial = intOf(head.body, "serial");
  if (headSerial > serial.serial)
    throw CatalogRollbackError(serialKind(name, serial.file) + " " + std::to_string(serial.serial) + " is lower than " +
                               std::to_string(headSerial) + ", signed in the catalogue of " + name + ": " + serial.file +
                               " was rolled back");
  if (!envOr("HEPBUNDLE_NO_CACHE").empty()) return;  // NodeState.default(): no node state
  checkAndRecord(cacheDirectory() + "/catalog-state.json", serial.repository, name, static_cast<std::int64_t>(chain.size()),
                 parsed->headDigest, serial.serial, serial.ns, o);
}

void checkApprovals(const std::string& recordsDir, const CatalogEntry& e, const TrustPolicy& policy, const Options& o) {
  if (!e.selector || !e.isAlias) return;
  const std::string& alias = *e.selector;
  const auto roles = requiredApprovals(policy, e.name, alias);
  if (roles.empty()) return;
  // records.list_records: the version's records in the order appended, those of kind approval
  const std::string parent = recordsDir + "/" + e.version;
  std::vector<std::string> entries;
  if (DIR* d = opendir(parent.c_str())) {
    while (dirent* x = readdir(d)) {
      const std::string n = x->d_name;
      if (n[0] != '.') entries.push_back(n);
    }
    closedir(d);
  }
  std::sort(entries.begin(), entries.end());
  std::vector<std::pair<std::string, json>> approvals;
  for (const auto& n : entries) {
    const std::string source = parent + "/" + n + "/record.json";
    json doc;
    try {
      doc = parseJson(readSmallFile(source, kMaxJsonBytes), source);
    } catch (const ReadError& r) {
      throw FormatError(source + ": unreadable record: " + (r.err ? std::strerror(r.err) : "not a regular file"));
    } catch (const FormatError& f) {
      throw FormatError(source + ": unreadable record: " + f.message());
    }
    if (!doc.is_object() || doc.value("mediaType", json()) != "application/vnd.hepbundle.record.v1+json")
      throw FormatError(source + ": unknown record format", "upgrade hepbundle");
    if (doc.value("kind", json()) == "approval") approvals.emplace_back(parent + "/" + n, doc);
  }
  std::vector<std::string> missing;
  for (const auto& role : roles) {
    bool ok = false;
    for (const auto& [dir, doc] : approvals)
      if ((ok = validApproval(dir, doc, e.name, alias, role, e.digest, policy, o))) break;
    if (!ok) missing.push_back(role);
  }
  if (missing.empty()) return;
  throw PolicyError(e.name + "@" + alias + " points at " + e.version + ", which lacks the approvals the trust policy requires for " + alias +
                        " (" + join(roles, ", ") + "); missing: " + join(missing, ", "),
                    "do not use it; the repository operator restores or re-collects the approvals (hepbundle approve " + e.name + "@" +
                        e.version + " --as ROLE) or moves " + alias + " back");
}

}  // namespace hepbundle::detail
