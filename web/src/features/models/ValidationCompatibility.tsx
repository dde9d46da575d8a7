import { Table, Text } from "@mantine/core";

import { statusWords } from "../../api/errors";
import { Truncated } from "../../components/Truncated";
import type { SignatureCompatibilityJson, SignatureDifferenceJson } from "../../gen/mlplane/v1/model_registry_pb";

function DifferencesTable({ caption, differences }: { caption: string; differences: SignatureDifferenceJson[] }) {
  return (
    <Table.ScrollContainer minWidth={620}>
      <Table verticalSpacing={6} layout="fixed" captionSide="top">
        <Table.Caption ta="left" fw={600} c="dark.7">
          {caption}
        </Table.Caption>
        <Table.Thead>
          <Table.Tr>
            <Table.Th w={170}>Change</Table.Th>
            <Table.Th w={150}>Where</Table.Th>
            <Table.Th w={120}>Before</Table.Th>
            <Table.Th w={120}>After</Table.Th>
            <Table.Th>What it means</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {differences.map((d, i) => (
            <Table.Tr key={`${d.change ?? ""}-${d.side ?? ""}-${d.tensor ?? ""}-${i}`}>
              <Table.Td>
                <Truncated size="sm" title={d.change}>
                  {d.change ? statusWords(d.change) : "—"}
                </Truncated>
              </Table.Td>
              <Table.Td>
                <Truncated size="sm" ff="monospace" title={[d.side, d.tensor].filter(Boolean).join(" ")}>
                  {[d.side, d.tensor].filter(Boolean).join(" ") || "—"}
                </Truncated>
              </Table.Td>
              <Table.Td>
                <Truncated size="sm" ff="monospace">
                  {d.old || "—"}
                </Truncated>
              </Table.Td>
              <Table.Td>
                <Truncated size="sm" ff="monospace">
                  {d.new || "—"}
                </Truncated>
              </Table.Td>
              <Table.Td>
                <Text size="sm" style={{ overflowWrap: "anywhere" }}>
                  {d.message || "—"}
                </Text>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

export function verdictSentence(compatibility: SignatureCompatibilityJson): string {
  const approved = compatibility.approvedVersion ?? "";
  const breaking = compatibility.breaking?.length ?? 0;
  switch (compatibility.verdict) {
    case "COMPATIBLE":
      return `Compatible with approved version ${approved}: its callers keep working.`;
    case "BREAKING":
      return `Breaking against approved version ${approved}: ${breaking.toLocaleString()} difference${breaking === 1 ? "" : "s"} would break its callers.`;
    case "NO_APPROVED_VERSION":
      return "No approved version of this model to compare with.";
    default:
      return "The compatibility verdict is unknown.";
  }
}

/** The signature against the model's approved version, every breaking difference named. */
export function CompatibilityView({ compatibility }: { compatibility: SignatureCompatibilityJson }) {
  const breaking = compatibility.breaking ?? [];
  const other = compatibility.nonBreaking ?? [];
  return (
    <>
      <Text size="sm" mb="sm" fw={compatibility.verdict === "BREAKING" ? 600 : undefined} c={compatibility.verdict === "BREAKING" ? "red.9" : undefined}>
        {verdictSentence(compatibility)}
      </Text>
      {breaking.length > 0 && <DifferencesTable caption="Breaking differences" differences={breaking} />}
      {other.length > 0 && (
        <div style={{ marginTop: breaking.length ? "var(--mantine-spacing-sm)" : undefined }}>
          <DifferencesTable caption="Other differences (not breaking)" differences={other} />
        </div>
      )}
    </>
  );
}
