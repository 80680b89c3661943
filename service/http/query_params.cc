#include "service/http/query_params.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"

namespace ckpt {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

absl::Status Bad(absl::string_view param, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("query parameter ", param, ": ", why));
}

const FieldDescriptor* FindField(const google::protobuf::Descriptor* type, absl::string_view name) {
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* field = type->field(i);
    if (field->name() == name || field->json_name() == name) return field;
  }
  return nullptr;
}

template <typename T>
bool ParseNumber(absl::string_view text, T* out) {
  return absl::SimpleAtoi(text, out);
}

// Sets (or, for a repeated field, adds) one scalar or well-known-type value.
absl::Status SetValue(absl::string_view param, const FieldDescriptor* field,
                      absl::string_view value, Message* message) {
  const Reflection* r = message->GetReflection();
  const bool repeated = field->is_repeated();
  auto bad_value = [&] {
    return Bad(param, absl::StrCat("\"", value, "\" is not a valid ", field->type_name()));
  };
#define CKPT_SET_NUMBER(TYPE, Setter, Adder)                                         \
  {                                                                                  \
    TYPE number;                                                                     \
    if (!ParseNumber(value, &number)) return bad_value();                            \
    repeated ? r->Adder(message, field, number) : r->Setter(message, field, number); \
    return absl::OkStatus();                                                         \
  }
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      CKPT_SET_NUMBER(int32_t, SetInt32, AddInt32)
    case FieldDescriptor::CPPTYPE_INT64:
      CKPT_SET_NUMBER(int64_t, SetInt64, AddInt64)
    case FieldDescriptor::CPPTYPE_UINT32:
      CKPT_SET_NUMBER(uint32_t, SetUInt32, AddUInt32)
    case FieldDescriptor::CPPTYPE_UINT64:
      CKPT_SET_NUMBER(uint64_t, SetUInt64, AddUInt64)
    case FieldDescriptor::CPPTYPE_FLOAT: {
      float number;
      if (!absl::SimpleAtof(value, &number)) return bad_value();
      repeated ? r->AddFloat(message, field, number) : r->SetFloat(message, field, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double number;
      if (!absl::SimpleAtod(value, &number)) return bad_value();
      repeated ? r->AddDouble(message, field, number) : r->SetDouble(message, field, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool flag;
      if (!absl::SimpleAtob(value, &flag)) return bad_value();
      repeated ? r->AddBool(message, field, flag) : r->SetBool(message, field, flag);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_STRING:
      repeated ? r->AddString(message, field, std::string(value))
               : r->SetString(message, field, std::string(value));
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* named = field->enum_type()->FindValueByName(std::string(value));
      int number = 0;
      if (named != nullptr) {
        number = named->number();
      } else if (!absl::SimpleAtoi(value, &number) ||
                 field->enum_type()->FindValueByNumber(number) == nullptr) {
        return Bad(param, absl::StrCat("\"", value, "\" is not a value of ",
                                       field->enum_type()->full_name()));
      }
      repeated ? r->AddEnumValue(message, field, number) : r->SetEnumValue(message, field, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      // A well-known type (Duration, Timestamp) in its JSON form, a JSON string.
      Message* target =
          repeated ? r->AddMessage(message, field) : r->MutableMessage(message, field);
      const std::string json = absl::StrCat("\"", value, "\"");
      if (value.find_first_of("\"\\") != absl::string_view::npos ||
          !google::protobuf::util::JsonStringToMessage(json, target).ok()) {
        return bad_value();
      }
      return absl::OkStatus();
    }
  }
#undef CKPT_SET_NUMBER
  return bad_value();
}

absl::Status SetParam(absl::string_view param, absl::string_view value, Message* message) {
  const std::vector<absl::string_view> path = absl::StrSplit(param, '.');
  for (size_t i = 0; i < path.size(); ++i) {
    const FieldDescriptor* field = FindField(message->GetDescriptor(), path[i]);
    if (field == nullptr) {
      return Bad(param, absl::StrCat("no field \"", path[i], "\" in ",
                                     message->GetDescriptor()->full_name()));
    }
    const bool last = i + 1 == path.size();
    if (field->is_map()) {
      // map<string, string>: the next part is the key.
      const auto* entry = field->message_type();
      if (i + 2 != path.size() ||
          entry->map_value()->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
        return Bad(param, absl::StrCat("name one entry of ", field->name(), " as ",
                                       field->json_name(), ".KEY"));
      }
      Message* item = message->GetReflection()->AddMessage(message, field);
      item->GetReflection()->SetString(item, entry->map_key(), std::string(path[i + 1]));
      item->GetReflection()->SetString(item, entry->map_value(), std::string(value));
      return absl::OkStatus();
    }
    const bool well_known = field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
                            field->message_type()->file()->package() == "google.protobuf";
    if (last || well_known) {
      if (!last) return Bad(param, absl::StrCat(field->name(), " has no fields to name"));
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !well_known) {
        return Bad(param, absl::StrCat("name a field of ", field->name(), ", as ",
                                       field->json_name(), ".FIELD"));
      }
      return SetValue(param, field, value, message);
    }
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || field->is_repeated()) {
      return Bad(param, absl::StrCat(field->name(), " has no fields to name"));
    }
    message = message->GetReflection()->MutableMessage(message, field);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FillFromQuery(const std::multimap<std::string, std::string>& params,
                           Message* message) {
  for (const auto& [name, value] : params) {
    absl::Status status = SetParam(name, value, message);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace ckpt
