// School and county codes (core/codes.hpp), and scripts/make-certs refusing the same set.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <set>

#include "core/codes.hpp"
#include "test_util.hpp"

using namespace campus;
using campus::test::TempDir;

namespace {

const std::string kCounty = "zhenkang";

// Codes that break the syntax, each for another reason (and "a/b" would climb into another
// school's topics, "+" and "#" are MQTT wildcards).
const std::vector<std::string> kBadSyntax = {"",     std::string(65, 'a'), "School-A", "a/b", "a+b", "#",
                                             "a b", "nan\xe5\x8d\x97",     "a\nb",     "a.b", "a_b"};

struct Run {
  int status = -1;
  std::string output;
};

// Runs a shell command, stdout and stderr together.
Run run(const std::string& command) {
  Run r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) r.output.append(buf, n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// A code as one shell word.
std::string sh_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

const std::string kMakeCerts = std::string(CAMPUS_SOURCE_DIR) + "/scripts/make-certs";

}  // namespace

TEST(Codes, SchoolCodesFromTheRegisterAreValid) {
  const std::vector<std::string> good = {"nansan-central-primary", "a", "0", "-", "x1-2", std::string(64, 'z')};
  for (const auto& code : good) EXPECT_EQ(code_problem(code, kCounty), std::nullopt) << code;
}

TEST(Codes, EachSyntaxProblemIsOneSentenceWithTheFix) {
  for (const auto& code : kBadSyntax) {
    auto p = code_problem(code, kCounty);
    ASSERT_TRUE(p.has_value()) << code;
    EXPECT_EQ(p->rfind("school code ", 0), 0u) << *p;
    EXPECT_NE(p->find("a-z, 0-9 and -"), std::string::npos) << *p;
    EXPECT_EQ(p->find('\n'), std::string::npos) << "one line: " << *p;
    EXPECT_EQ(code_syntax_problem(code, "audit name")->rfind("audit name ", 0), 0u);
  }
  EXPECT_EQ(*code_problem("School-A", kCounty),
            "school code \"School-A\" contains 'S': use only lowercase a-z, 0-9 and -, e.g. \"nansan-central-primary\"");
  EXPECT_EQ(*code_problem(std::string(65, 'a'), kCounty),
            "school code \"" + std::string(65, 'a') + "\" is 65 characters long: at most 64 of a-z, 0-9 and -");
  // Unprintable bytes are shown, never passed through into a log line.
  EXPECT_NE(code_problem("a\nb", kCounty)->find("\"a\\x0ab\" contains byte 0x0a"), std::string::npos);
  EXPECT_NE(code_problem("nan\xe5\x8d\x97", kCounty)->find("\"nan\\xe5\\x8d\\x97\" contains byte 0xe5"), std::string::npos);
}

TEST(Codes, ReservedWordsAndTheCountysOwnCodeAreRefused) {
  for (auto word : kReservedSchoolCodes) {
    auto p = code_problem(std::string(word), kCounty);
    ASSERT_TRUE(p.has_value()) << word;
    EXPECT_NE(p->find("is reserved ("), std::string::npos) << *p;
    EXPECT_NE(p->find("give the school another code in the county register"), std::string::npos) << *p;
    // Reserved for schools only: a county or an audit may use the word.
    EXPECT_EQ(code_syntax_problem(std::string(word)), std::nullopt) << word;
  }
  EXPECT_EQ(*code_problem("all", kCounty),
            "school code \"all\" is reserved (campus/v1/zhenkang/all/cmd is the request to every school): give the "
            "school another code in the county register");
  EXPECT_NE(code_problem("zhenkang", kCounty)->find("is the county's own code"), std::string::npos);
  EXPECT_EQ(code_problem("zhenkang", "mengding"), std::nullopt) << "another county's code is a valid school code";
}

// make-certs is bash and keeps its own copy of the list: both must refuse the same codes.
TEST(Codes, MakeCertsRefusesExactlyTheSameSchoolCodes) {
  auto listed = run(kMakeCerts + " --reserved-codes");
  ASSERT_EQ(listed.status, 0) << listed.output;
  std::set<std::string> words;
  for (std::size_t at = 0, nl; (nl = listed.output.find('\n', at)) != std::string::npos; at = nl + 1)
    words.insert(listed.output.substr(at, nl - at));
  EXPECT_EQ(words, std::set<std::string>(kReservedSchoolCodes.begin(), kReservedSchoolCodes.end()));

  TempDir dir;
  std::vector<std::string> refused(kReservedSchoolCodes.begin(), kReservedSchoolCodes.end());
  refused.push_back(kCounty);
  refused.insert(refused.end(), kBadSyntax.begin(), kBadSyntax.end());
  for (const auto& code : refused) {
    const auto out = dir.path() / "certs";
    auto r = run(kMakeCerts + " " + out.string() + " --county " + kCounty + " good-school " + sh_quoted(code));
    EXPECT_EQ(r.status, 2) << "make-certs issued " << code << ":\n" << r.output;
    EXPECT_NE(r.output.find("make-certs: school code"), std::string::npos) << r.output;
    EXPECT_FALSE(std::filesystem::exists(out)) << "make-certs wrote something before refusing " << code;
    // The reason is the one code_problem gives (make-certs prints the code as given).
    const std::string why = *code_problem(code, kCounty);
    for (const char* part : {"is reserved (", "is the county's own code", "characters long", "is empty"}) {
      if (why.find(part) != std::string::npos) {
        EXPECT_NE(r.output.find(part), std::string::npos) << r.output;
      }
    }
    std::filesystem::remove_all(out);
  }
  auto ok = run(kMakeCerts + " " + (dir.path() / "certs").string() + " --county " + kCounty + " good-school");
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "certs" / "good-school.crt"));
}
