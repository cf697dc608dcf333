// Student pseudonyms: the HMAC-SHA256 the school's box computes, and the key file's rules.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "campus/pseudonym.hpp"

namespace campus {
namespace {
namespace fs = std::filesystem;

const char* kKey = "0123456789abcdef0123456789abcdef";

// The expected values come from Python's hmac module:
//   hmac.new(key, b"G530102201001011234", hashlib.sha256).digest()[:10], base32, lower case.
TEST(Pseudonym, IsTheKeyedHmacOfTheNumberInBase32) {
  auto p = StudentPseudonyms::from_key(kKey);
  EXPECT_EQ(p.pseudonym("G530102201001011234"), "p-otcluxqtfb4cf7d2");
  EXPECT_EQ(p.pseudonym("g530102201001011234"), "p-otcluxqtfb4cf7d2");  // the same number, typed in lower case
  EXPECT_EQ(p.fingerprint(), "bde4fe92");
  EXPECT_TRUE(StudentPseudonyms::is_pseudonym(p.pseudonym("20260001")));
  EXPECT_NE(p.pseudonym("G530102201001011234"), p.pseudonym("G530102201001011235"));
  // Another school's key gives another pseudonym for the same number.
  EXPECT_NE(StudentPseudonyms::from_key("another school's key, 32 bytes!").pseudonym("G530102201001011234"),
            p.pseudonym("G530102201001011234"));
  // Remembered values give the same answer, and forgetting them changes nothing but memory.
  auto first = p.pseudonym("20260001");
  p.forget();
  EXPECT_EQ(p.pseudonym("20260001"), first);
}

TEST(Pseudonym, RecognisesItsOwnForm) {
  EXPECT_TRUE(StudentPseudonyms::is_pseudonym("p-otcluxqtfb4cf7d2"));
  EXPECT_FALSE(StudentPseudonyms::is_pseudonym("p-otcluxqtfb4cf7d"));
  EXPECT_FALSE(StudentPseudonyms::is_pseudonym("p-OTCLUXQTFB4CF7D2"));
  EXPECT_FALSE(StudentPseudonyms::is_pseudonym("p-otcluxqtfb4cf7d1"));  // 1 is not base32
  EXPECT_FALSE(StudentPseudonyms::is_pseudonym("20260001"));
}

struct KeyDir {
  fs::path dir;
  KeyDir() {
    char tmpl[] = "/tmp/pseudonym-test-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  ~KeyDir() { fs::remove_all(dir); }
};

TEST(Pseudonym, AMissingKeyIsCreatedOnceWithMode0600AndNeverOverwritten) {
  KeyDir d;
  auto file = d.dir / "student-pseudonym.key";
  EXPECT_FALSE(StudentPseudonyms::open(file, false).ok());  // campusctl never creates one
  bool created = false;
  auto a = StudentPseudonyms::open(file, true, &created);
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_TRUE(created);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ifstream in(file);
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text.size(), 64u);  // 32 random bytes in hex
  auto b = StudentPseudonyms::open(file, true, &created);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(created);
  EXPECT_EQ(a->fingerprint(), b->fingerprint());
  EXPECT_EQ(a->pseudonym("G530102201001011234"), b->pseudonym("G530102201001011234"));
}

TEST(Pseudonym, AKeyFileOthersCanReadOrThatIsTooShortIsRefused) {
  KeyDir d;
  auto file = d.dir / "k";
  std::ofstream(file) << kKey << "\n";
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  auto open = StudentPseudonyms::open(file, true);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.error().message().find("chmod 600"), std::string::npos) << open.error().message();
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_TRUE(StudentPseudonyms::open(file, false).ok());
  std::ofstream(file) << "short\n";
  auto weak = StudentPseudonyms::open(file, false);
  ASSERT_FALSE(weak.ok());
  EXPECT_NE(weak.error().what.find("shorter than 16 bytes"), std::string::npos);
  auto nowhere = StudentPseudonyms::open(d.dir / "no-such-dir" / "k", true);
  ASSERT_FALSE(nowhere.ok());
  EXPECT_NE(nowhere.error().what.find("cannot create the pseudonym key file"), std::string::npos);
}

}  // namespace
}  // namespace campus
