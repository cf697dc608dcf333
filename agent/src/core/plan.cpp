// The plan's targets (see plan.hpp).
#include "core/plan.hpp"

namespace campus::plan {
namespace {

const char* kRoomTypes[] = {"classroom", "function_room", "office"};

bool number(const Json& obj, const char* key) { return obj.is_object() && obj.contains(key) && obj[key].is_number(); }

}  // namespace

Json fiber_target(const Json& f) {
  if (!f.is_object()) return nullptr;
  bool met = true, known = true;
  for (const char* t : kRoomTypes) {
    const Json part = f.value(t, Json::object());
    if (number(part, "rooms") && part["rooms"].get<double>() == 0) continue;  // no room of this type
    if (!number(part, "coverage")) known = false;
    else if (part["coverage"].get<double>() < 0.99995) met = false;
  }
  return !met ? Json(false) : known ? Json(true) : Json(nullptr);
}

Json recording_target(const Json& r) {
  if (!number(r, "compliant") || !number(r, "classrooms")) return nullptr;
  return r["classrooms"].get<double>() > 0 && r["compliant"] == r["classrooms"];
}

Json attendance_target(const Json& open_cases) {
  if (!open_cases.is_number()) return nullptr;
  return open_cases.get<double>() == 0;
}

Json digital_campus(const Json& fiber, const Json& recording, const Json& attendance) {
  if (fiber == false || recording == false || attendance == false) return false;
  if (fiber == true && recording == true && attendance == true) return true;
  return nullptr;
}

double plan_share(int year) {
  if (year <= 2023) return 0.2;
  if (year == 2024) return 0.6;
  return 1.0;
}

}  // namespace campus::plan
