import { useAuth } from "../../app/auth";
import { PageHeader } from "../../components/PageHeader";
import { AccountOverview } from "./AccountOverview";

export default function OverviewPage() {
  const { session } = useAuth();
  return (
    <>
      <PageHeader title="Overview" subtitle={`Credits and usage for ${session?.userId ?? "you"}`} />
      <AccountOverview user="" />
    </>
  );
}
