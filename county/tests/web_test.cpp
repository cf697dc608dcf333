// The dashboard's pure parts: request targets and forms, parameter checks, the accounts file,
// password hashes and sessions.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "web_accounts.hpp"
#include "web_request.hpp"

using namespace campus::county::web;

TEST(WebRequest, DecodesThePathAndTheQuery) {
  auto t = parse_target("/schools?sort=name&q=%E5%8B%90+%E6%8D%A7&online=");
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ(t->path, "/schools");
  EXPECT_EQ(t->params.get("sort"), "name");
  EXPECT_EQ(t->params.get("q"), "勐 捧");
  EXPECT_EQ(t->params.get("online"), "");
  EXPECT_EQ(t->params.get("none"), std::nullopt);
  auto bare = parse_target("/plan?&&lang=en&");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->params.items.size(), 1u);
  auto path = parse_target("/a%20b");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(path->path, "/a b");
}

TEST(WebRequest, RefusesEveryBadTargetWithWhereAndWhat) {
  struct Case {
    std::string target, where, what;
  };
  const Case cases[] = {
      {"", "request target", "does not start with '/'"},
      {"schools", "request target", "does not start with '/'"},
      {"/" + std::string(kMaxTarget, 'a'), "request target", "longer than 4096"},
      {"/../etc/passwd", "request path", "\"..\" segment"},
      {"/a/./b", "request path", "\".\" or \"..\""},
      {"/a/%2e%2E/b", "request path", "segment"},
      {"/a/..", "request path", "segment"},
      {"/a%00b", "request path", "NUL"},
      {"/a\\b", "request path", "backslash"},
      {"/a%5cb", "request path", "backslash"},
      {"/a%zz", "request path", "two hex digits"},
      {"/a%4", "request path", "two hex digits"},
      {"/%ff", "request path", "UTF-8"},
      {"/%c0%af", "request path", "UTF-8"},  // an overlong '/'
      {"/x?q=%", "query parameter", "two hex digits"},
      {"/x?q=a&q=b", "query parameter q", "given twice"},
      {"/x?=v", "query", "without a name"},
      {"/x?q=%01", "query parameter q", "not UTF-8 text"},
      {"/x?q=%ed%a0%80", "query parameter q", "not UTF-8 text"},  // a surrogate
      {"/x?" + std::string(40, 'n') + "=1", "query", "longer than 32"},
      {"/x?q=" + std::string(1025, 'v'), "query parameter q", "more than 1024"},
  };
  for (const auto& c : cases) {
    auto t = parse_target(c.target);
    ASSERT_FALSE(t.ok()) << c.target;
    EXPECT_NE(t.error().where.find(c.where), std::string::npos) << c.target << ": " << t.error().message();
    EXPECT_NE(t.error().what.find(c.what), std::string::npos) << c.target << ": " << t.error().message();
    EXPECT_FALSE(t.error().fix.empty()) << c.target;
  }
  std::string many = "/x?";
  for (int i = 0; i < 33; ++i) many += "p" + std::to_string(i) + "=1&";
  auto t = parse_target(many);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().what.find("more than 32 parameters"), std::string::npos);
}

TEST(WebRequest, FormsAndParameterChecks) {
  auto f = parse_form("user=ana&password=a%26b%3Dc+d&next=%2Fschools");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->get("password"), "a&b=c d");
  EXPECT_EQ(f->get("next"), "/schools");
  EXPECT_TRUE(parse_form("").ok());

  const std::vector<ParamSpec> spec = {{"sort", {"name", "school"}}, {"q", {}}};
  auto ok = parse_target("/s?sort=name&q=anything");
  EXPECT_TRUE(check_params(ok->params, spec).ok());
  auto unknown = check_params(parse_target("/s?limit=3")->params, spec);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().where, "query parameter limit");
  EXPECT_EQ(unknown.error().fix, "use one of: sort, q");
  auto choice = check_params(parse_target("/s?sort=size")->params, spec);
  ASSERT_FALSE(choice.ok());
  EXPECT_EQ(choice.error().what, "\"size\" is not allowed");
  EXPECT_EQ(choice.error().fix, "use one of: name, school");
  auto none = check_params(parse_target("/metrics?x=1")->params, {});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().fix, "remove it: the page takes no parameter");
}

TEST(WebAccounts, HashesVerifyAndDiffer) {
  const std::string h1 = hash_password("correct horse", 1000), h2 = hash_password("correct horse", 1000);
  EXPECT_NE(h1, h2);  // a fresh salt each time
  EXPECT_TRUE(verify_password("correct horse", h1));
  EXPECT_TRUE(verify_password("correct horse", h2));
  EXPECT_FALSE(verify_password("correct horsE", h1));
  EXPECT_FALSE(verify_password("", h1));
  EXPECT_FALSE(verify_password("correct horse", "plain"));
  EXPECT_FALSE(verify_password("correct horse", "pbkdf2-sha256$10$00$00"));  // too few iterations, short salt
  EXPECT_EQ(h1.rfind("pbkdf2-sha256$1000$", 0), 0u);
}

TEST(WebAccounts, TheFileIsWrittenAndReadWithPreciseErrors) {
  const auto dir = std::filesystem::temp_directory_path() / ("campus-web-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "accounts";
  ASSERT_TRUE(set_account(file, "ana", Role::viewer, "pw-ana-0000", 1000).ok());
  ASSERT_TRUE(set_account(file, "olu", Role::operator_, "pw-olu-0000", 1000).ok());
  ASSERT_TRUE(set_account(file, "ana", Role::operator_, "pw-ana-1111", 1000).ok());  // replaced in place
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640);
  auto loaded = load_accounts(file);
  EXPECT_TRUE(loaded.errors.empty());
  ASSERT_EQ(loaded.accounts.size(), 2u);
  EXPECT_EQ(loaded.accounts[0].user, "ana");
  EXPECT_EQ(loaded.accounts[0].role, Role::operator_);
  EXPECT_TRUE(verify_password("pw-ana-1111", loaded.accounts[0].hash));
  EXPECT_FALSE(set_account(file, "bad:name", Role::viewer, "x", 1000).ok());

  {
    std::ofstream out(file, std::ios::app);
    out << "# a comment\n\nnocolons\nbad name:viewer:x\nzoe:admin:" << hash_password("z", 1000)
        << "\nyan:viewer:pbkdf2-sha256$abc$00$00\nolu:viewer:" << hash_password("o", 1000) << "\n";
  }
  loaded = load_accounts(file);
  EXPECT_EQ(loaded.accounts.size(), 2u);  // the good lines stay usable
  ASSERT_EQ(loaded.errors.size(), 5u);
  EXPECT_EQ(loaded.errors[0].where, file.string() + ":5");
  EXPECT_EQ(loaded.errors[0].what, "not user:role:hash");
  EXPECT_NE(loaded.errors[1].what.find("letters, digits"), std::string::npos);
  EXPECT_EQ(loaded.errors[2].where, file.string() + ":7 user zoe");
  EXPECT_NE(loaded.errors[2].what.find("neither viewer nor operator"), std::string::npos);
  EXPECT_NE(loaded.errors[3].what.find("iteration count"), std::string::npos);
  EXPECT_NE(loaded.errors[4].what.find("listed twice (first on line 2)"), std::string::npos);

  auto missing = load_accounts(dir / "none");
  ASSERT_EQ(missing.errors.size(), 1u);
  EXPECT_NE(missing.errors[0].fix.find("campus-county passwd"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(WebAccounts, SessionsEndAtTheirLifetimeAtLogoutAndWithTheirUser) {
  using namespace std::chrono;
  Sessions s(milliseconds(1000));
  const auto t0 = steady_clock::now();
  const std::string a = s.open("ana", Role::viewer, t0), b = s.open("olu", Role::operator_, t0);
  EXPECT_EQ(a.size(), 64u);
  EXPECT_NE(a, b);
  ASSERT_TRUE(s.find(a, t0 + milliseconds(999)));
  EXPECT_EQ(s.find(b, t0)->role, Role::operator_);
  EXPECT_FALSE(s.find(a, t0 + milliseconds(1000)));  // expired, and removed
  EXPECT_FALSE(s.find(a, t0));
  EXPECT_FALSE(s.find("", t0));
  s.close(b);
  EXPECT_FALSE(s.find(b, t0));
  const std::string c = s.open("kim", Role::viewer, t0), d = s.open("kim", Role::viewer, t0);
  s.close_user("kim");
  EXPECT_FALSE(s.find(c, t0));
  EXPECT_FALSE(s.find(d, t0));
  // Expired sessions go at the next login: the map does not grow without bound.
  for (int i = 0; i < 100; ++i) s.open("u" + std::to_string(i), Role::viewer, t0);
  s.open("last", Role::viewer, t0 + seconds(5));
  EXPECT_EQ(s.size(), 1u);
}
