import { PageHeader } from "../../components/PageHeader";
import { UsageView } from "./UsageView";

export default function UsagePage() {
  return (
    <>
      <PageHeader title="Usage" subtitle="What your calls cost, by date, model and service." />
      <UsageView user="" />
    </>
  );
}
