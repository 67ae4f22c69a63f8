/**
 * The schema data (RFC 7643 §4, §8.7.1) that everything else is derived from: validation, PATCH,
 * filter resolution, projection and the discovery endpoints. Where the product's own rules are
 * stricter than the RFC (userName, displayName, emails with a value, Group displayName required) the
 * definitions say so, and the validator (`missingRequired` in resource.ts) reads these same flags, so
 * that `/Schemas` cannot say anything but what is enforced.
 */
export type AttributeType =
  | "string"
  | "boolean"
  | "decimal"
  | "integer"
  | "dateTime"
  | "reference"
  | "complex"
  | "binary";
export type Mutability = "readOnly" | "readWrite" | "immutable" | "writeOnly";
export type Returned = "always" | "never" | "default" | "request";
export type Uniqueness = "none" | "server" | "global";

export interface AttributeDef {
  name: string;
  type: AttributeType;
  multiValued: boolean;
  description: string;
  required: boolean;
  caseExact: boolean;
  mutability: Mutability;
  returned: Returned;
  uniqueness: Uniqueness;
  canonicalValues?: string[];
  referenceTypes?: string[];
  subAttributes?: AttributeDef[];
  /**
   * A path in the same schema (e.g. `name.formatted`) whose value satisfies `required` when this
   * attribute is absent. RFC 7643 cannot say "one of two": /Schemas marks this attribute required and
   * says so in both attributes' descriptions; the field itself is never sent.
   */
  alternative?: string;
  /**
   * The value given when a resource is created without the attribute. Once assigned it is never
   * unassigned: a PUT that leaves it out keeps the stored value, and a PATCH that removes it or sets it
   * to null or "" is refused. Rendered into the description; the field itself is never sent.
   */
  createDefault?: boolean | string | number;
}

export interface SchemaDef {
  id: string;
  name: string;
  description: string;
  attributes: AttributeDef[];
}

export const USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User";
export const GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group";
export const ENTERPRISE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
export const LIST_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
export const PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
export const SERVICE_PROVIDER_CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
export const RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
export const SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema";

type Opts = Partial<Omit<AttributeDef, "name" | "type" | "subAttributes">>;

function attr(name: string, type: AttributeType, description: string, o: Opts = {}): AttributeDef {
  return {
    name,
    type,
    multiValued: o.multiValued ?? false,
    description,
    required: o.required ?? false,
    caseExact: o.caseExact ?? false,
    mutability: o.mutability ?? "readWrite",
    returned: o.returned ?? "default",
    uniqueness: o.uniqueness ?? "none",
    ...(o.canonicalValues ? { canonicalValues: o.canonicalValues } : {}),
    ...(o.referenceTypes ? { referenceTypes: o.referenceTypes } : {}),
    ...(o.alternative !== undefined ? { alternative: o.alternative } : {}),
    ...(o.createDefault !== undefined ? { createDefault: o.createDefault } : {}),
  };
}

function complex(name: string, description: string, subAttributes: AttributeDef[], o: Opts = {}): AttributeDef {
  return { ...attr(name, "complex", description, o), subAttributes };
}

const str = (name: string, description: string, o: Opts = {}) => attr(name, "string", description, o);

/** The value/display/type/primary shape shared by emails, phoneNumbers, ims, photos, entitlements, roles, x509Certificates. */
function multiValuedSet(
  name: string,
  description: string,
  valueType: AttributeType,
  types: string[] | undefined,
  o: Opts = {},
  valueOpts: Opts = {},
): AttributeDef {
  return complex(
    name,
    description,
    [
      attr("value", valueType, `The value of the ${name} entry.`, valueOpts),
      str("display", "A human-readable name, primarily used for display purposes."),
      str("type", `A label indicating the ${name} entry's function.`, types ? { canonicalValues: types } : {}),
      attr("primary", "boolean", `Whether this is the primary ${name} entry; at most one value is primary.`),
    ],
    { multiValued: true, ...o },
  );
}

export const USER_SCHEMA_DEF: SchemaDef = {
  id: USER_SCHEMA,
  name: "User",
  description: "User Account",
  attributes: [
    str("userName", "Unique identifier for the User, compared case-insensitively after width mapping and Unicode NFC normalisation; no control, format or invisible characters, unpaired surrogates or surrounding whitespace.", {
      required: true,
      uniqueness: "server",
    }),
    complex("name", "The components of the user's real name.", [
      str("formatted", "The full name, formatted for display."),
      str("familyName", "The family name of the User."),
      str("givenName", "The given name of the User."),
      str("middleName", "The middle name(s) of the User."),
      str("honorificPrefix", "The honorific prefix(es) of the User."),
      str("honorificSuffix", "The honorific suffix(es) of the User."),
    ]),
    str("displayName", "The name of the User, suitable for display.", { required: true, alternative: "name.formatted" }),
    str("nickName", "The casual way to address the user."),
    attr("profileUrl", "reference", "A URL to the User's online profile; stored as sent.", { referenceTypes: ["external"] }),
    str("title", "The user's title, such as 'Vice President'."),
    str("userType", "Identifies the relationship between the organization and the user."),
    str("preferredLanguage", "The User's preferred written or spoken language (RFC 7231 Accept-Language format)."),
    str("locale", "The User's default location, e.g. 'en-US'."),
    str("timezone", "The User's time zone in IANA format, e.g. 'America/Los_Angeles'."),
    attr("active", "boolean", "The User's administrative status: false deactivates the account, which stays readable.", { createDefault: true }),
    str("password", "The User's cleartext password on write; only a salted hash is stored and it is never returned.", {
      mutability: "writeOnly",
      returned: "never",
    }),
    multiValuedSet("emails", "Email addresses for the user.", "string", ["work", "home", "other"], { required: true }, { required: true }),
    multiValuedSet("phoneNumbers", "Phone numbers for the User.", "string", ["work", "home", "mobile", "fax", "pager", "other"]),
    multiValuedSet("ims", "Instant messaging addresses for the User.", "string", ["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
    multiValuedSet("photos", "URLs of photos of the User.", "reference", ["photo", "thumbnail"], {}, { referenceTypes: ["external"] }),
    complex(
      "addresses",
      "A physical mailing address for this User.",
      [
        str("formatted", "The full mailing address, formatted for display."),
        str("streetAddress", "The full street address component."),
        str("locality", "The city or locality component."),
        str("region", "The state or region component."),
        str("postalCode", "The zip code or postal code component."),
        str("country", "The country name component (ISO 3166-1 alpha-2)."),
        str("type", "A label indicating the address's function.", { canonicalValues: ["work", "home", "other"] }),
        attr("primary", "boolean", "Whether this is the primary address."),
      ],
      { multiValued: true },
    ),
    complex(
      "groups",
      "The groups the user belongs to directly, computed from Group membership.",
      [
        str("value", "The identifier of the User's group.", { mutability: "readOnly" }),
        attr("$ref", "reference", "The URI of the Group.", { mutability: "readOnly", referenceTypes: ["Group"] }),
        str("display", "The displayName of the group.", { mutability: "readOnly" }),
        str("type", "How the membership was derived.", { mutability: "readOnly", canonicalValues: ["direct", "indirect"] }),
      ],
      { multiValued: true, mutability: "readOnly" },
    ),
    multiValuedSet("entitlements", "Entitlements for the User.", "string", undefined),
    multiValuedSet("roles", "Roles for the User.", "string", undefined),
    multiValuedSet("x509Certificates", "DER-encoded X.509 certificates for the User.", "binary", undefined, {}, { caseExact: true }),
  ],
};

export const ENTERPRISE_USER_SCHEMA_DEF: SchemaDef = {
  id: ENTERPRISE_USER_SCHEMA,
  name: "EnterpriseUser",
  description: "Enterprise User",
  attributes: [
    str("employeeNumber", "Numeric or alphanumeric identifier assigned to a person by the organization."),
    str("costCenter", "Identifies the name of a cost center."),
    str("organization", "Identifies the name of an organization."),
    str("division", "Identifies the name of a division."),
    str("department", "Identifies the name of a department."),
    complex("manager", "The User's manager; the id need not belong to a provisioned User.", [
      str("value", "The id of the SCIM resource representing the User's manager."),
      attr("$ref", "reference", "The URI of the SCIM resource representing the User's manager.", { referenceTypes: ["User"] }),
      str("displayName", "The displayName of the User's manager.", { mutability: "readOnly" }),
    ]),
  ],
};

export const GROUP_SCHEMA_DEF: SchemaDef = {
  id: GROUP_SCHEMA,
  name: "Group",
  description: "Group",
  attributes: [
    str("displayName", "A human-readable name for the Group, unique compared case-insensitively.", {
      required: true,
      uniqueness: "server",
    }),
    complex(
      "members",
      "A list of members of the Group: Users or Groups that exist on this server.",
      [
        str("value", "Identifier of the member of this Group.", { mutability: "immutable" }),
        attr("$ref", "reference", "The URI of the member resource.", { mutability: "immutable", referenceTypes: ["User", "Group"] }),
        str("display", "The displayName of the member.", { mutability: "readOnly" }),
        str("type", "The type of the member, derived from the member's id.", {
          mutability: "immutable",
          canonicalValues: ["User", "Group"],
        }),
      ],
      { multiValued: true },
    ),
  ],
};

/** Attributes every resource has (RFC 7643 §3.1), not part of any schema's attribute list in /Schemas. */
export const COMMON_ATTRIBUTES: AttributeDef[] = [
  str("id", "A unique identifier for the resource, assigned by the service provider.", {
    caseExact: true,
    mutability: "readOnly",
    returned: "always",
    uniqueness: "server",
  }),
  str("externalId", "An identifier for the resource as defined by the provisioning client.", { caseExact: true }),
  complex(
    "meta",
    "Resource metadata.",
    [
      str("resourceType", "The name of the resource type of the resource.", { caseExact: true, mutability: "readOnly" }),
      attr("created", "dateTime", "The date and time the resource was added.", { mutability: "readOnly" }),
      attr("lastModified", "dateTime", "The most recent date and time the resource was modified.", { mutability: "readOnly" }),
      attr("location", "reference", "The URI of the resource.", { caseExact: true, mutability: "readOnly", referenceTypes: ["uri"] }),
      str("version", "The version (weak ETag) of the resource.", { caseExact: true, mutability: "readOnly" }),
    ],
    { mutability: "readOnly" },
  ),
];

/** The resource types this server has (RFC 7643 §4, §3 and §4.2). */
export type ResourceKind = "User" | "Group";

export interface ResourceTypeDef {
  name: ResourceKind;
  endpoint: string;
  description: string;
  schema: SchemaDef;
  extensions: { schema: SchemaDef; required: boolean }[];
}

export const USER_RESOURCE: ResourceTypeDef = {
  name: "User",
  endpoint: "/Users",
  description: "User Account",
  schema: USER_SCHEMA_DEF,
  extensions: [{ schema: ENTERPRISE_USER_SCHEMA_DEF, required: false }],
};

export const GROUP_RESOURCE: ResourceTypeDef = {
  name: "Group",
  endpoint: "/Groups",
  description: "Group",
  schema: GROUP_SCHEMA_DEF,
  extensions: [],
};

export const RESOURCE_TYPES: ResourceTypeDef[] = [USER_RESOURCE, GROUP_RESOURCE];
export const SCHEMAS: SchemaDef[] = [USER_SCHEMA_DEF, ENTERPRISE_USER_SCHEMA_DEF, GROUP_SCHEMA_DEF];

/** The resource type definition of a kind. */
export const rtOf = (kind: ResourceKind): ResourceTypeDef => (kind === "User" ? USER_RESOURCE : GROUP_RESOURCE);
